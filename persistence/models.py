"""SQLModel tables. Changing one needs an Alembic migration in `persistence/migrations`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, UniqueConstraint, true
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
    __table_args__ = (Index("ix_events_contact_name", "contact_id", "name"),)

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
    # sending -> sent | failed | suppressed; `sending` found on retry means "maybe sent".
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
