"""Run one enrollment of a journey in the time-skipping server and see what it did, and when.

The side-effect activities are replaced by captures registered under the contract names (the
pattern Temporal's samples use); everything else, timers, signals, the runtime, is real.
Set JOURNEYMAN_RECORD_HISTORIES=1 to write each run's history under `tests/histories/` for the
replay test.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker, WorkflowRunner

from activities.lifecycle import send_with_records
from activities.rendering import RenderedEmail, TemplateRenderer
from activities.timing import resolve_local_time
from worker import workflow_runner
from workflows.catalog import all_versions
from workflows.contracts import (
    EVENT_SIGNAL,
    EXIT_SIGNAL,
    NEXT_LOCAL_TIME,
    NOTIFY_SALES,
    READ_CONTACT,
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    SEND_MESSAGE,
    START_JOURNEY,
    STATE_QUERY,
    UPDATE_CONTACT,
    ContactRequest,
    ContactSnapshot,
    ContactUpdate,
    ContactUpdateResult,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentState,
    Event,
    ExitRequest,
    LifecycleAck,
    LifecycleBatch,
    LifecycleBatchAck,
    LifecycleRecord,
    LocalTimeRequest,
    LocalTimeResult,
    SalesNotification,
    SalesNotificationResult,
    SendRequest,
    SendResult,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes

HISTORIES = Path(__file__).resolve().parent.parent / "histories"


@dataclass
class Sent:
    step: str
    template: str
    channel: str
    after: timedelta
    context: dict[str, Any]
    category: str = "marketing"
    attempt: int = 1


# A stand-in for send-time policy: given the request and the due time, answer (say,
# `deferred`) instead of sending; None means "send".
SendPolicy = Callable[[SendRequest, datetime], SendResult | None]


@dataclass
class Capture:
    """What the journey asked the outside world to do."""

    contact: ContactSnapshot
    sends: list[Sent] = field(default_factory=list)
    lifecycle: list[LifecycleRecord] = field(default_factory=list)
    starts: list[StartJourneyRequest] = field(default_factory=list)
    notifications: list[SalesNotification] = field(default_factory=list)
    # Contact updates, applied to `contact` as the real activity would (None removes).
    updates: list[ContactUpdate] = field(default_factory=list)
    started_at: datetime | None = None
    policy: SendPolicy | None = None
    held: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        capture = self

        async def keep_all(records: Sequence[LifecycleRecord]) -> None:
            for record in records:
                keep(record)

        @activity.defn(name=SEND_MESSAGE)
        async def send_message(request: SendRequest) -> SendResult:
            # The records a journey hands its sends are kept as the real activity writes them.
            return await send_with_records(keep_all, request, functools.partial(send, request))

        async def send(request: SendRequest) -> SendResult:
            assert capture.started_at is not None
            scheduled = activity.info().current_attempt_scheduled_time
            sent = Sent(
                step=request.step,
                template=request.template,
                channel=request.channel,
                after=_to_second(scheduled - capture.started_at),
                context=request.context,
                category=request.category,
                attempt=request.attempt,
            )
            answer = capture.policy(request, scheduled) if capture.policy else None
            if answer is not None:
                capture.held.append(sent)
                return answer
            capture.sends.append(sent)
            return SendResult(message_id=request.message_id, status="sent", sent_at=scheduled)

        @activity.defn(name=NEXT_LOCAL_TIME)
        async def next_local_time(request: LocalTimeRequest) -> LocalTimeResult:
            return resolve_local_time(request, capture.contact.timezone, "UTC")

        @activity.defn(name=READ_CONTACT)
        async def read_contact(request: ContactRequest) -> ContactSnapshot:
            return capture.contact

        def keep(record: LifecycleRecord) -> bool:
            if record.kind == "entered" and capture.started_at is None:
                capture.started_at = record.at
            # A batch may be written again after a cancelled attempt: kept once, like the
            # real activity does.
            if record in capture.lifecycle:
                return False
            capture.lifecycle.append(record)
            return True

        @activity.defn(name=RECORD_LIFECYCLE)
        async def record_lifecycle(record: LifecycleRecord) -> LifecycleAck:
            return LifecycleAck(recorded=keep(record))

        @activity.defn(name=RECORD_LIFECYCLE_BATCH)
        async def record_lifecycle_batch(batch: LifecycleBatch) -> LifecycleBatchAck:
            return LifecycleBatchAck(recorded=sum(keep(record) for record in batch.records))

        @activity.defn(name=START_JOURNEY)
        async def start_journey(request: StartJourneyRequest) -> StartJourneyResult:
            capture.starts.append(request)
            return StartJourneyResult(
                journey=request.journey,
                workflow_id=workflow_id_for(request.journey, request.contact_id, request.key),
                action="started",
            )

        @activity.defn(name=NOTIFY_SALES)
        async def notify_sales(request: SalesNotification) -> SalesNotificationResult:
            capture.notifications.append(request)
            return SalesNotificationResult(
                notification_id=request.notification_id, task_queued=True, email="sent"
            )

        @activity.defn(name=UPDATE_CONTACT)
        async def update_contact(request: ContactUpdate) -> ContactUpdateResult:
            capture.updates.append(request)
            attributes = capture.contact.attributes
            for name, value in request.attributes.items():
                if value is None:
                    attributes.pop(name, None)
                else:
                    attributes[name] = value
            changed = [f"attributes.{name}" for name in sorted(request.attributes)]
            if request.dormant is not None:
                changed.append("dormant")
            return ContactUpdateResult(contact_id=request.contact_id, changed=changed)

        # `notify_sales` stays last: `enrolled(notify_override=)` replaces it by position.
        self.activities: list[Callable[..., Any]] = [
            send_message,
            read_contact,
            record_lifecycle,
            start_journey,
            next_local_time,
            record_lifecycle_batch,
            update_contact,
            notify_sales,
        ]

    @property
    def templates(self) -> list[str]:
        return [sent.template for sent in self.sends]


def _to_second(delta: timedelta) -> timedelta:
    # Skipped time is exact; the real milliseconds the test server spends on top are noise.
    return timedelta(seconds=round(delta.total_seconds()))


@dataclass
class Run:
    env: WorkflowEnvironment
    handle: WorkflowHandle[Any, EnrollmentResult]
    capture: Capture
    contact_id: str

    async def advance(self, duration: timedelta) -> None:
        await self.env.sleep(duration)

    async def event(self, name: str, event_id: str | None = None, **properties: Any) -> None:
        await self.handle.signal(
            EVENT_SIGNAL,
            Event(
                id=event_id or uuid.uuid4().hex,
                contact_id=self.contact_id,
                name=name,
                properties=properties,
            ),
        )

    async def exit(self, reason: str = "operator") -> None:
        await self.handle.signal(EXIT_SIGNAL, ExitRequest(reason=reason))

    async def state(self) -> EnrollmentState:
        state: EnrollmentState = await self.handle.query(STATE_QUERY, result_type=EnrollmentState)
        return state

    async def result(self) -> EnrollmentResult:
        return await self.handle.result()


@asynccontextmanager
async def enrolled(
    env: WorkflowEnvironment,
    journey: type[Journey],
    *,
    trigger_properties: dict[str, Any] | None = None,
    trigger: str | None = None,
    attributes: dict[str, Any] | None = None,
    contact: dict[str, Any] | None = None,
    policy: SendPolicy | None = None,
    contact_id: str | None = None,
    extra_workflows: tuple[type[Journey], ...] = (),
    send_override: Callable[[SendRequest], Awaitable[SendResult]] | None = None,
    notify_override: Callable[[SalesNotification], Awaitable[SalesNotificationResult]]
    | None = None,
    start_override: Callable[[StartJourneyRequest], Awaitable[StartJourneyResult]] | None = None,
    runner: WorkflowRunner | None = None,
) -> AsyncIterator[Run]:
    """Start one enrollment of `journey` for a fresh contact, triggered by its first trigger
    (a journey without triggers, enrolled by a schedule or in bulk, starts without an event)."""
    contact_id = contact_id or f"c-{uuid.uuid4().hex[:8]}"
    capture = Capture(
        contact=ContactSnapshot(
            contact_id=contact_id,
            exists=True,
            **{
                "email": f"{contact_id}@example.com",
                "attributes": attributes or {},
                "consent": {"email": True, "sms": True, "push": True},
                **(contact or {}),
            },
        ),
        policy=policy,
    )
    properties = trigger_properties or {}
    trigger_name = trigger or next(iter(journey.triggers), None)
    event = (
        Event(id=uuid.uuid4().hex, contact_id=contact_id, name=trigger_name, properties=properties)
        if trigger_name
        else None
    )
    key = str(properties[journey.key]) if journey.key else None
    task_queue = f"journey-test-{uuid.uuid4().hex[:8]}"
    activities: list[Callable[..., Any]] = list(capture.activities)
    if send_override is not None:
        activities[0] = send_override
    if notify_override is not None:
        activities[-1] = notify_override
    if start_override is not None:
        activities[3] = start_override
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[journey, *extra_workflows],
        activities=activities,
        # The sandbox `journeyman worker` runs journeys in, unless a test brings its own.
        workflow_runner=runner or workflow_runner(env.client.data_converter),
    ):
        handle = await env.client.start_workflow(
            journey.workflow_type(),
            # As Journeyman's starter starts it (tests/lifecycle covers a run without the flag).
            EnrollmentInput(contact_id=contact_id, key=key, trigger=event, lean_bookkeeping=True),
            id=workflow_id_for(journey.name, contact_id, key),
            task_queue=task_queue,
            search_attributes=journey_search_attributes(journey, contact_id),
            result_type=EnrollmentResult,
            start_signal=EVENT_SIGNAL if event else None,
            start_signal_args=[event] if event else [],
        )
        run = Run(env=env, handle=handle, capture=capture, contact_id=contact_id)
        yield run
        if os.environ.get("JOURNEYMAN_RECORD_HISTORIES") == "1" and journey in all_versions():
            await record_history(run, journey)


async def record_history(run: Run, journey: type[Journey]) -> None:
    """Keep this run's history for the replay test (only for runs that finished)."""
    await run.handle.result()
    history = await run.handle.fetch_history()
    scenario = os.environ.get("PYTEST_CURRENT_TEST", "run").split("::")[-1].split(" ")[0]
    folder = HISTORIES / journey.workflow_type()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{scenario}.json").write_text(json.dumps(history.to_json_dict(), indent=1))


def render_sent(renderer: TemplateRenderer, run: Run, journey: str, sent: Sent) -> RenderedEmail:
    """The email a captured send would have been: its template rendered with the context the
    send activity builds (the run's contact, the step and the step's context)."""
    return renderer.render_email(
        sent.template,
        renderer.context(
            contact=run.capture.contact,
            event=None,
            journey=journey,
            step=sent.step,
            step_context=sent.context,
        ),
    )
