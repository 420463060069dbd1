"""What crosses the workflow boundary: dataclasses, names and keys, defined once.

Workflows, activities and the API all import from here; nothing here does I/O, so the
workflow sandbox can load it.
"""

# No `from __future__ import annotations` here: the data converter resolves these dataclasses'
# field types inside the workflow sandbox, where string annotations may not resolve.
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from temporalio.common import SearchAttributeKey

# Search attributes every enrollment keeps current, so operators can filter in the Temporal UI.
JOURNEY_NAME = SearchAttributeKey.for_keyword("JourneyName")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
SEARCH_ATTRIBUTES = (JOURNEY_NAME, JOURNEY_VERSION, CONTACT_ID, JOURNEY_STEP)

# Workflow handler names, part of the wire contract with the API.
EVENT_SIGNAL = "event"
EXIT_SIGNAL = "exit"
STATE_QUERY = "state"

# Activity names, so workflows call them without importing their implementation.
SEND_MESSAGE = "send_message"
NEXT_LOCAL_TIME = "next_local_time"
READ_CONTACT = "read_contact"
RECORD_LIFECYCLE = "record_lifecycle"
# Several lifecycle records in one local activity and one transaction (see workflows/runtime.py).
RECORD_LIFECYCLE_BATCH = "record_lifecycle_batch"
START_JOURNEY = "start_journey"
NOTIFY_SALES = "notify_sales"
IN_SEGMENT = "in_segment"
UPDATE_CONTACT = "update_contact"
# The bulk enrollment workflow's type name (segment or list -> enrollments, rate limited).
BULK_ENROLLMENT = "bulk_enrollment"

# Events only Journeyman emits: consent changes (the consent API), engagement (tracking and
# provider feedback), lead thresholds (scoring) and CRM lifecycle changes. A backend posting
# one would end journeys or skip scoring without the change behind it, so the events API
# refuses these names.
SYSTEM_EVENT_NAMES = frozenset({"unsubscribed", "subscribed"})
SYSTEM_EVENT_PREFIXES = ("email.", "lead.", "lifecycle.", "segment.")
# In `goals` or `waits_for`: any event of the contact (but a declared exit, and the lead.*
# events scoring emits, which follow behaviour rather than being behaviour). Exits are named.
ANY_EVENT = "*"


def is_system_event(name: str) -> bool:
    return name in SYSTEM_EVENT_NAMES or name.startswith(SYSTEM_EVENT_PREFIXES)


# ApplicationError types, defined once.
ERR_JOURNEY_DEFINITION = "JourneyDefinitionError"
ERR_UNKNOWN_JOURNEY = "UnknownJourney"
ERR_TEMPLATE = "TemplateError"
ERR_PERMANENT_SEND = "PermanentSendFailure"

Reentry = Literal["never", "after_exit", "always"]
# `marketing` needs the contact's consent on the channel, counts against frequency caps and
# respects quiet hours; `transactional` (receipts, password resets) does none of these.
Category = Literal["marketing", "transactional"]
# What to do with a send that quiet hours or a frequency cap holds back.
HoldPolicy = Literal["defer", "skip"]
Channel = Literal["email", "sms", "push", "webhook"]
Status = Literal["active", "converted", "exited", "completed", "failed"]
LifecycleKind = Literal["entered", "step", "ended"]


def workflow_id_for(journey: str, contact_id: str, key: str | None = None) -> str:
    """Deterministic enrollment id: the same contact, journey and key always map to one id."""
    base = f"journey:{journey}:{contact_id}"
    return f"{base}:{key}" if key else base


@dataclass
class Event:
    """A behaviour fact as journeys see it."""

    id: str
    contact_id: str
    name: str
    properties: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None


@dataclass
class EnrollmentInput:
    contact_id: str
    key: str | None = None
    trigger: Event | None = None
    # The task queue of this enrollment's sends (JOURNEYMAN_SEND_TASK_QUEUE), so a provider
    # quota can cap sends alone; None: the enrollment's own queue. Fixed at the start, so a
    # replay schedules its sends where the first run did.
    send_task_queue: str | None = None
    # Set by Journeyman's starters: the run takes the lean bookkeeping path without asking
    # for it with a patch marker (a marker is two history events per run: itself and a
    # `TemporalChangeVersion` upsert). False: the path is read from the history's markers,
    # as for runs started before this field, or by a starter that does not set it.
    lean_bookkeeping: bool = False


@dataclass
class StepRecord:
    name: str
    kind: str
    at: datetime
    outcome: str


@dataclass
class EnrollmentState:
    """What the `state` query answers: where an enrollment is and what it has done."""

    workflow_id: str
    journey: str
    version: int
    contact_id: str
    key: str | None
    status: Status
    current_step: str | None
    waiting_for: list[str]
    wait_until: datetime | None
    steps: list[StepRecord]
    ended_by: str | None = None
    # Split step -> the variant (or "holdout") this enrollment was assigned.
    variants: dict[str, str] = field(default_factory=dict)


@dataclass
class EnrollmentResult:
    status: Status
    ended_by: str | None
    steps: list[StepRecord]


@dataclass
class ExitRequest:
    reason: str = "operator"


@dataclass
class QuietHours:
    """Local hours in which marketing sends are held back, e.g. 21:00 to 08:00."""

    start: str = "21:00"
    end: str = "08:00"
    policy: HoldPolicy = "defer"
    enabled: bool = True


@dataclass
class LifecycleRecord:
    workflow_id: str
    run_id: str
    journey: str
    version: int
    contact_id: str
    key: str | None
    kind: LifecycleKind
    at: datetime
    status: Status = "active"
    step: str | None = None
    step_kind: str | None = None
    outcome: str | None = None
    trigger_event_id: str | None = None


@dataclass
class SendRequest:
    message_id: str
    workflow_id: str
    run_id: str
    journey: str
    version: int
    step: str
    contact_id: str
    channel: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    trigger: Event | None = None
    category: Category = "marketing"
    # None: the journey's quiet hours, else the global default from settings.
    quiet_hours: QuietHours | None = None
    # When a frequency cap is reached: wait for a free slot, or record the send suppressed.
    on_cap: HoldPolicy = "skip"
    # Journey-level fallback when the contact has no timezone.
    default_timezone: str | None = None
    # Which attempt of this step this is after deferrals (1 for the first).
    attempt: int = 1
    # Set by the workflow once Temporal stopped retrying the send (its reason, e.g.
    # "ProviderUnavailable"): the activity records the message failed and sends nothing.
    give_up: str | None = None
    # Lifecycle records the journey made since its last write, for the activity to write
    # before it sends (they must not wait on a provider outage); and this step's own record,
    # for the activity to complete with the outcome and write (`send_with_records`).
    lifecycle: list[LifecycleRecord] = field(default_factory=list)
    record_as: LifecycleRecord | None = None


@dataclass
class SendResult:
    """`deferred` means: nothing was sent, call again at `retry_at` (quiet hours or a cap)."""

    message_id: str
    status: Literal["sent", "suppressed", "failed", "deferred"]
    reason: str | None = None
    sent_at: datetime | None = None
    retry_at: datetime | None = None
    # The activity wrote the request's `lifecycle`, and (unless deferred) its `record_as`.
    lifecycle_written: bool = False
    step_recorded: bool = False

    @property
    def outcome(self) -> str:
        return f"{self.status}: {self.reason}" if self.reason else self.status


@dataclass
class LocalTimeRequest:
    """The next moment at `time` (HH:MM) on one of `weekdays` (0=Monday) in the contact's zone."""

    contact_id: str
    time: str
    after: datetime
    weekdays: list[int] | None = None
    default_timezone: str | None = None


@dataclass
class LocalTimeResult:
    at: datetime
    timezone: str
    # The calendar date at `at` in `timezone` (ISO, e.g. "2026-11-23"): what "today" is for
    # the contact then, e.g. to check a birthday. None in histories recorded before it.
    local_date: str | None = None


@dataclass
class ContactRequest:
    contact_id: str


# Attributes that name or locate a person. `read_contact` leaves them (and the email and
# phone) out of the snapshot it answers: an activity's result is kept in the workflow history,
# and journeys branch on facts (consent, score, interests), not on who the person is. The
# send and sales activities read the contact from the database themselves.
PERSONAL_ATTRIBUTES = frozenset(
    {
        "first_name",
        "middle_name",
        "last_name",
        "name",
        "full_name",
        "display_name",
        "nickname",
        "email",
        "phone",
        "mobile",
        "address",
        "street",
        "postal_code",
        "zip",
    }
)


@dataclass
class ContactSnapshot:
    contact_id: str
    exists: bool
    # Left empty in what `read_contact` answers (see `for_workflow`); `has_email` and
    # `has_phone` say whether there is one. Histories recorded before that carry them.
    email: str | None = None
    phone: str | None = None
    timezone: str | None = None
    locale: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # Per-channel consent for marketing messages.
    consent: dict[str, bool] = field(default_factory=dict)
    # The lead score now (decay applied), whether the contact is a qualified lead, and the
    # lifecycle stage (HubSpot's vocabulary: lead, marketingqualifiedlead, customer...).
    score: float = 0.0
    qualified: bool = False
    lifecycle_stage: str | None = None
    has_email: bool = False
    has_phone: bool = False

    def reachable_by(self, channel: Literal["email", "sms"]) -> bool:
        """Whether there is an address on the channel (either form of the snapshot)."""
        if channel == "email":
            return self.has_email or bool(self.email)
        return self.has_phone or bool(self.phone)

    def for_workflow(self) -> "ContactSnapshot":
        """This snapshot without the address fields and `PERSONAL_ATTRIBUTES`: what may
        enter a workflow history."""
        return ContactSnapshot(
            contact_id=self.contact_id,
            exists=self.exists,
            timezone=self.timezone,
            locale=self.locale,
            attributes={k: v for k, v in self.attributes.items() if k not in PERSONAL_ATTRIBUTES},
            consent=dict(self.consent),
            score=self.score,
            qualified=self.qualified,
            lifecycle_stage=self.lifecycle_stage,
            has_email=self.reachable_by("email"),
            has_phone=self.reachable_by("sms"),
        )


@dataclass
class LifecycleAck:
    recorded: bool


@dataclass
class LifecycleBatch:
    """Lifecycle records of one enrollment, oldest first, written in one transaction."""

    records: list[LifecycleRecord] = field(default_factory=list)


@dataclass
class LifecycleBatchAck:
    # How many records this call wrote; fewer than sent when an earlier attempt wrote some.
    recorded: int


@dataclass
class StartJourneyRequest:
    journey: str
    contact_id: str
    key: str | None = None
    trigger: Event | None = None
    started_by: str | None = None


@dataclass
class StartJourneyResult:
    journey: str
    workflow_id: str
    action: Literal["started", "signalled", "skipped"]
    reason: str | None = None


@dataclass
class SalesNotification:
    """Tell sales about a contact: a task for the owner in the CRM and an internal email.

    `notification_id` is stable for the step (like a message id), so a retried or replayed
    step queues one task and sends one email.
    """

    notification_id: str
    workflow_id: str
    journey: str
    step: str
    contact_id: str
    subject: str
    # Template of the internal email (`templates/<template>.*`), rendered with the contact,
    # the score and `context`; its plain-text part is the CRM task's body.
    template: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class SalesNotificationResult:
    notification_id: str
    # The CRM task is queued for the sync (None when no CRM is configured).
    task_queued: bool
    # The internal email: sent, or why not (e.g. "already_sent").
    email: str


@dataclass
class SegmentCheck:
    contact_id: str
    segment: str
    # Evaluated as of this moment (the workflow's clock), for time windows like "30 days".
    at: datetime


@dataclass
class SegmentCheckResult:
    segment: str
    member: bool


@dataclass
class ContactUpdate:
    """Changes a journey makes to its contact (list hygiene, progressive profiling)."""

    contact_id: str
    # Merged into the contact's attributes; a None value removes the attribute.
    attributes: dict[str, Any] = field(default_factory=dict)
    # True marks the contact dormant (no marketing email until they are active again);
    # False clears it; None leaves it.
    dormant: bool | None = None
    # Why (kept with the change, shown in the contact's history).
    reason: str = ""


@dataclass
class ContactUpdateResult:
    contact_id: str
    changed: list[str] = field(default_factory=list)


@dataclass
class JourneySchedule:
    """When a journey enrolls a segment's members by itself, as a Temporal Schedule.

    Calendar fields follow Temporal's calendar spec (each a list of values; empty means
    "every"), read in `timezone`. `overlap` is what happens if the previous run still runs:
    "skip" (the default), "buffer_one", or "allow_all".
    """

    segment: str
    hour: list[int] = field(default_factory=lambda: [9])
    minute: list[int] = field(default_factory=lambda: [0])
    day_of_week: list[int] = field(default_factory=list)
    day_of_month: list[int] = field(default_factory=list)
    month: list[int] = field(default_factory=list)
    timezone: str = "UTC"
    overlap: Literal["skip", "buffer_one", "allow_all"] = "skip"
    # Starts per second of each run's bulk enrollment (None: the setting's default).
    starts_per_second: float | None = None


BulkStatus = Literal["running", "completed", "failed"]


@dataclass
class BulkProgress:
    """Where a bulk enrollment is: the `progress` query's answer and the workflow's result.

    `done` counts contacts processed (started + skipped + failed). `rate` is contacts
    processed per second of workflow time since `started_at` (measured at the end of each
    paced page, so it never exceeds `starts_per_second`); `eta_seconds` is what is left of
    `total` at that rate (the limit until something is measured). For a segment `total` is
    its size when the enrollment began; members joining meanwhile may make `done` exceed it.
    """

    journey: str
    # "segment:<name>" or "list:<list id>".
    source: str
    starts_per_second: float
    total: int = 0
    done: int = 0
    started: int = 0
    # Reason (reentry_never, already_active, unknown_contact, ...) -> contacts skipped for it.
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    # A few failures, "contact: error", for the operator (at most a handful are kept).
    errors: list[str] = field(default_factory=list)
    rate: float = 0.0
    eta_seconds: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status: BulkStatus = "running"
    # Pages processed, over every run of the workflow (continue-as-new included).
    pages: int = 0
    runs: int = 1


@dataclass
class BulkCarry:
    """What continue-as-new carries: the counters and where the next page starts."""

    progress: BulkProgress
    # Segments page by contact id: the last id processed. Lists page by position: the next.
    after_contact: str | None = None
    next_position: int = 0


@dataclass
class BulkEnrollmentInput:
    """Enroll every member of `segment`, or every id of the uploaded list `list_id`, in
    `journey`, at most `starts_per_second`. Continue-as-new carries `carry` along."""

    journey: str
    segment: str | None = None
    list_id: str | None = None
    starts_per_second: float = 50.0
    # Who asked: "api", "cli", or the schedule's id.
    requested_by: str = "api"
    # State carried across continue-as-new by the bulk workflow itself; None on the first run.
    carry: BulkCarry | None = None
    # A run continues as new after this many pages (or sooner when Temporal suggests it).
    pages_per_run: int = 200
