"""SQLModel tables. Changing one needs an Alembic migration in `persistence/migrations`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    UniqueConstraint,
    false,
    true,
)
from sqlmodel import Field, SQLModel

from workflows.contracts import Event


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC (SQLite hands stored ones back naive)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index),
    )


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"

    contact_id: str = Field(primary_key=True, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    timezone: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=35)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Consent to marketing per channel; transactional messages do not need it.
    email_consent: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    sms_consent: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    push_consent: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=true())
    )
    consent_updated_at: datetime | None = _ts()
    # Why email is suppressed for good (hard_bounce, complaint), set by provider feedback.
    email_suppressed: str | None = Field(default=None, max_length=40)
    # Marketing lifecycle stage, in HubSpot's vocabulary (subscriber, lead,
    # marketingqualifiedlead, salesqualifiedlead, opportunity, customer, evangelist, other).
    lifecycle_stage: str | None = Field(default=None, max_length=40)
    # The contact's id in the CRM, learnt from the first sync; inbound CRM webhooks name it.
    crm_id: str | None = Field(default=None, max_length=100, index=True)
    # Set when a re-engagement journey found the contact inactive (list hygiene): no
    # marketing email while set; their next event clears it.
    dormant_at: datetime | None = _ts()
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )

    def has_consent(self, channel: str) -> bool:
        return bool(getattr(self, f"{channel}_consent", True))


CONSENT_CHANNELS = ("email", "sms", "push")


class EventRecord(SQLModel, table=True):
    """A stored behaviour event; `id` is the caller's idempotency key."""

    def as_event(self) -> Event:
        return Event(
            id=self.id,
            contact_id=self.contact_id,
            name=self.name,
            properties=dict(self.properties),
            occurred_at=as_utc(self.occurred_at),
        )

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_contact_name", "contact_id", "name"),
        # Segments over recent activity ("no event in 30 days") scan by contact and time.
        Index("ix_events_contact_occurred", "contact_id", "occurred_at"),
    )

    id: str = Field(primary_key=True, max_length=200)
    contact_id: str = Field(max_length=200)
    name: str = Field(max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Filled once routing finished; a retry of the same id answers from here.
    routed_at: datetime | None = _ts()
    routing: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class Enrollment(SQLModel, table=True):
    """One contact in one journey: one workflow execution chain (`run_id` = first run)."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_contact", "contact_id", "journey", "status"),
        Index("ix_enrollments_journey", "journey", "version", "status"),
        Index("ix_enrollments_journey_entered", "journey", "entered_at"),
    )

    run_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=500, index=True)
    journey: str = Field(max_length=200)
    version: int
    contact_id: str = Field(max_length=200)
    key: str | None = Field(default=None, max_length=200)
    status: str = Field(default="active", max_length=20)
    ended_by: str | None = Field(default=None, max_length=200)
    current_step: str | None = Field(default=None, max_length=200)
    trigger_event_id: str | None = Field(default=None, max_length=200)
    entered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = _ts()


class EnrollmentStep(SQLModel, table=True):
    """A step an enrollment finished, for per-step stats."""

    __tablename__ = "enrollment_steps"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_enrollment_steps_run_step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    journey: str = Field(max_length=200, index=True)
    step: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    outcome: str = Field(max_length=200)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Message(SQLModel, table=True):
    """One send of one template on one channel; the row is claimed before the provider call."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_contact", "contact_id", "created_at"),
        Index("ix_messages_caps", "contact_id", "channel", "category", "created_at"),
        Index("ix_messages_journey", "journey", "step"),
        # Provider feedback finds messages by our Message-ID header; /metrics groups by these.
        Index("ix_messages_provider_message_id", "provider_message_id"),
        Index("ix_messages_channel_status", "channel", "status"),
    )

    message_id: str = Field(primary_key=True, max_length=700)
    workflow_id: str = Field(max_length=500)
    run_id: str = Field(max_length=64, index=True)
    journey: str = Field(max_length=200)
    step: str = Field(max_length=200)
    contact_id: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    category: str = Field(default="marketing", max_length=20)
    template: str = Field(max_length=200)
    # sending -> sent | retrying | failed | suppressed. A retry that finds `sending` with no
    # lock on the row (its attempt died) sends again under the same id; see
    # activities/journey_activities.py.
    status: str = Field(default="sending", max_length=20)
    reason: str | None = Field(default=None, max_length=200)
    to_address: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=998)
    provider_message_id: str | None = Field(default=None, max_length=998)
    attempts: int = 0
    # The links of the rendered message, in order: a click token names an index here, so a
    # click can only ever redirect to a URL the template produced.
    links: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    delivered_at: datetime | None = _ts()
    opened_at: datetime | None = _ts()
    first_clicked_at: datetime | None = _ts()
    clicks: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    bounced_at: datetime | None = _ts()
    complained_at: datetime | None = _ts()
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    sent_at: datetime | None = _ts()


class Engagement(SQLModel, table=True):
    """One thing that happened to a sent message: delivered, opened, clicked, bounced, complained.

    `source_id` makes each fact idempotent (a provider's event id, or a tracking hit's own id).
    """

    __tablename__ = "engagements"
    __table_args__ = (
        UniqueConstraint("source_id", name="uq_engagements_source"),
        Index("ix_engagements_message", "message_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(max_length=700)
    kind: str = Field(max_length=20)
    source_id: str = Field(max_length=300)
    url: str | None = Field(default=None, max_length=2000)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LeadScore(SQLModel, table=True):
    """A contact's lead score: `points` as of `as_of`; decay since then is applied on read.

    `qualified` is the hysteresis state: set when the score reached the qualify line, cleared
    when it fell under the disqualify line, so each crossing emits its event once.
    """

    __tablename__ = "lead_scores"

    contact_id: str = Field(primary_key=True, max_length=200)
    points: float = 0.0
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    qualified: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ScoreChange(SQLModel, table=True):
    """One scored event (or a threshold noticed by decay alone): the score history.

    Unique per contact and `event_id`, which makes applying an event idempotent.
    """

    __tablename__ = "score_changes"
    __table_args__ = (
        UniqueConstraint("contact_id", "event_id", name="uq_score_changes_event"),
        Index("ix_score_changes_contact_at", "contact_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=200)
    event_id: str = Field(max_length=200)
    event_name: str = Field(max_length=200)
    # Rule name -> points it gave (after its daily cap), so caps can be summed per rule.
    rule_points: dict[str, float] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    delta: float = 0.0
    # The score right after this change (decayed to `at`).
    score: float = 0.0
    # A threshold event this change emitted: lead.qualified / lead.disqualified, or None.
    emitted: str | None = Field(default=None, max_length=200)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CrmOutbox(SQLModel, table=True):
    """A contact whose pushed fields changed and still has to reach the CRM (one row each).

    Many changes to one contact update one row, so they leave as one call; a push removes the
    row only if nothing changed after it read the contact (`changed_at` unchanged).
    """

    __tablename__ = "crm_outbox"
    __table_args__ = (Index("ix_crm_outbox_status_changed", "status", "changed_at"),)

    contact_id: str = Field(primary_key=True, max_length=200)
    # pending -> (pushed: row deleted) | failed (the CRM refused it: a validation error).
    status: str = Field(default="pending", max_length=20)
    first_changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    changed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, max_length=2000)


class CrmFieldState(SQLModel, table=True):
    """When a mapped field last changed and on which side: the "newer timestamp wins" rule."""

    __tablename__ = "crm_field_state"

    contact_id: str = Field(primary_key=True, max_length=200)
    field: str = Field(primary_key=True, max_length=200)
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # "local" (Journeyman changed it: push it) or "crm" (it came from the CRM: do not echo).
    source: str = Field(max_length=10)


class CrmTask(SQLModel, table=True):
    """A task for the contact's owner in the CRM (a sales notification), created by the sync.

    `id` is the notifying step's stable id, so a retried step queues one task.
    """

    __tablename__ = "crm_tasks"
    __table_args__ = (Index("ix_crm_tasks_status", "status", "created_at"),)

    id: str = Field(primary_key=True, max_length=700)
    contact_id: str = Field(max_length=200, index=True)
    journey: str = Field(max_length=200)
    subject: str = Field(max_length=500)
    body: str = Field(default="", max_length=10000)
    # pending -> created | failed
    status: str = Field(default="pending", max_length=20)
    crm_task_id: str | None = Field(default=None, max_length=100)
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    done_at: datetime | None = _ts()


class CrmInboundEvent(SQLModel, table=True):
    """An inbound CRM webhook event already applied (idempotency on the CRM's event id)."""

    __tablename__ = "crm_inbound_events"

    id: str = Field(primary_key=True, max_length=300)
    contact_id: str | None = Field(default=None, max_length=200)
    # Field -> value it applied; fields refused by the conflict rule are left out.
    applied: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class SegmentMembership(SQLModel, table=True):
    """A contact known to be in a segment that triggers journeys: entering is the change
    from absent to present here, so each entry starts its journeys once."""

    __tablename__ = "segment_memberships"

    segment: str = Field(primary_key=True, max_length=200)
    contact_id: str = Field(primary_key=True, max_length=200)
    entered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class BulkListItem(SQLModel, table=True):
    """One contact id of an uploaded list for a bulk enrollment, in upload order."""

    __tablename__ = "bulk_list_items"

    list_id: str = Field(primary_key=True, max_length=100)
    position: int = Field(primary_key=True)
    contact_id: str = Field(max_length=200)


class Erasure(SQLModel, table=True):
    """A contact erased on request (GDPR): when, and how many rows went from each table.

    Keyed by the contact's pseudonym (`journeyman.erasure.pseudonym`), never its id, so the
    record holds no personal data. A contact id that comes back and is erased again updates
    its record (counts added up).
    """

    __tablename__ = "erasures"

    pseudonym: str = Field(primary_key=True, max_length=40)
    requested_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    completed_at: datetime | None = _ts()
    # Table (or "workflows_terminated") -> rows deleted or anonymised, summed over sweeps.
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
