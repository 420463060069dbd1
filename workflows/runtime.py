"""The journey runtime: what every journey class inherits.

A journey subclasses `Journey`, declares its name, triggers, goals and exits as class
attributes, writes its steps in `steps()` with the primitives below, and is decorated with
`@journey`. The runtime turns it into a Temporal workflow that:

- receives every behaviour event through one signal, de-duplicated by event id;
- ends the enrollment the moment a goal (`converted`) or exit (`exited`) event arrives,
  whatever step it is in, by cancelling the steps;
- answers the `state` query and keeps the `JourneyStep` search attribute on the step it waits
  in (a wait, a wait_for, a held send) or on how it ended;
- records its lifecycle (entered, each step, ended) for stats, without a command of its own
  where it can: a send carries the records made since the last write to its activity, which
  writes them with the send's own outcome ("entered" before it sends); what is left is
  written in one batch before each durable wait and at the end (see `_record`).

Only `workflow.*` time, timers and logging are used here: this module runs in the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, RetryState

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ANY_EVENT,
        CONTACT_ID,
        ERR_JOURNEY_DEFINITION,
        ERR_PERMANENT_SEND,
        ERR_TEMPLATE,
        ERR_UNKNOWN_JOURNEY,
        EVENT_SIGNAL,
        EXIT_SIGNAL,
        IN_SEGMENT,
        JOURNEY_NAME,
        JOURNEY_STEP,
        JOURNEY_VERSION,
        NEXT_LOCAL_TIME,
        NOTIFY_SALES,
        READ_CONTACT,
        RECORD_LIFECYCLE,
        RECORD_LIFECYCLE_BATCH,
        SEND_MESSAGE,
        START_JOURNEY,
        STATE_QUERY,
        UPDATE_CONTACT,
        Category,
        Channel,
        ContactRequest,
        ContactSnapshot,
        ContactUpdate,
        ContactUpdateResult,
        EnrollmentInput,
        EnrollmentResult,
        EnrollmentState,
        Event,
        ExitRequest,
        HoldPolicy,
        JourneySchedule,
        LifecycleAck,
        LifecycleBatch,
        LifecycleBatchAck,
        LifecycleKind,
        LifecycleRecord,
        LocalTimeRequest,
        LocalTimeResult,
        QuietHours,
        Reentry,
        SalesNotification,
        SalesNotificationResult,
        SegmentCheck,
        SegmentCheckResult,
        SendRequest,
        SendResult,
        StartJourneyRequest,
        StartJourneyResult,
        Status,
        StepRecord,
        workflow_id_for,
    )
    from workflows.splits import assign_variant

# Sends retry through provider outages with backoff; a day later the message is stale, so the
# step is recorded as failed and the journey goes on rather than sending yesterday's news.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=[ERR_TEMPLATE, ERR_PERMANENT_SEND],
)
SEND_TIMEOUT = timedelta(seconds=60)
# A send heartbeats while it runs longer than a third of this (`activities.journey_activities`),
# so an attempt whose worker died is retried after this long, not after SEND_TIMEOUT. Activity
# options are not part of what replay compares, so recorded histories still replay.
SEND_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
SEND_GIVE_UP_AFTER = timedelta(hours=24)
# Quiet hours or a cap may hold a send back; after this many holds it is dropped, not queued
# forever (a cap that never frees means the contact is over-messaged anyway).
MAX_DEFERRALS = 20
# Patch id of recording a send Temporal stopped retrying as failed in the message log.
RECORD_GIVEN_UP_SENDS = "record-given-up-sends"
# Patch id of buffering lifecycle records and writing them in batches (see `_record`); runs
# started before it record each one with its own local activity, as their histories say.
BATCHED_LIFECYCLE = "batched-lifecycle"
# Patch id of lean bookkeeping: lifecycle records ride on sends (above) and `JourneyStep` is
# set only where an enrollment may stay (a durable wait) and at the end, rather than at every
# step: two of four local activities and two of five upserts fewer on a send-wait-wait_for-send
# journey. Runs started before it keep the batched (or older) path their histories hold.
LEAN_BOOKKEEPING = "lean-bookkeeping"
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# The same, except that a mistake in the journey (an unknown timezone, an unknown segment)
# fails at once rather than retrying forever.
DEFINITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[ERR_JOURNEY_DEFINITION],
)


class Journey:
    """Base class of every journey. Subclasses declare the class attributes and `steps()`."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    triggers: ClassVar[tuple[str, ...]] = ()
    goals: ClassVar[tuple[str, ...]] = ()
    exits: ClassVar[tuple[str, ...]] = ()
    # Events the steps wait for with `wait_for`; routing uses this to signal enrollments.
    waits_for: ClassVar[tuple[str, ...]] = ()
    reentry: ClassVar[Reentry] = "never"
    # Event property that keys enrollments (one per contact per value), e.g. "cart_id".
    key: ClassVar[str | None] = None
    # Quiet hours for this journey's marketing sends (None: the global setting).
    quiet_hours: ClassVar[QuietHours | None] = None
    # Timezone for contacts without one (None: the global JOURNEYMAN_DEFAULT_TIMEZONE).
    timezone: ClassVar[str | None] = None
    # A journey the contact is handed to when a goal converts them (e.g. a purchase ends lead
    # nurturing and starts onboarding); the goal event becomes its trigger.
    on_conversion_start: ClassVar[str | None] = None
    # A segment whose new members enter this journey (checked when their events or
    # attributes change); its members can also be enrolled in bulk.
    entry_segment: ClassVar[str | None] = None
    # Enroll a segment's members on a calendar (a Temporal Schedule made at worker start-up).
    schedule: ClassVar[JourneySchedule | None] = None

    def __init__(self, enrollment: EnrollmentInput) -> None:
        self.enrollment = enrollment
        self.contact_id = enrollment.contact_id
        self.enrollment_key = enrollment.key
        self.trigger = enrollment.trigger
        self._seen_event_ids: set[str] = set()
        if enrollment.trigger is not None:
            self._seen_event_ids.add(enrollment.trigger.id)
        # Events the steps may still `wait_for`, with the time they arrived.
        self._inbox: list[tuple[datetime, Event]] = []
        self._window_start: datetime | None = None
        self._status: Status = "active"
        self._ended_by: str | None = None
        self._goal_event: Event | None = None
        self._steps_task: asyncio.Task[None] | None = None
        self._current_step: str | None = None
        self._waiting_for: list[str] = []
        self._wait_until: datetime | None = None
        self._done: list[StepRecord] = []
        # Lifecycle records not written yet (batched runs only; see `_record`).
        self._lean = False
        self._batched = False
        self._unrecorded: list[LifecycleRecord] = []
        self._used_step_names: set[str] = set()
        # Split step -> assigned variant, shown in the state query.
        self.variants: dict[str, str] = {}

    # ----- to be written by each journey -------------------------------------------------

    async def steps(self) -> None:
        """The journey, top to bottom. Returning ends the enrollment as `completed`."""
        raise NotImplementedError

    # ----- declarations ------------------------------------------------------------------

    @classmethod
    def listens_to(cls) -> frozenset[str]:
        """Every event name a running enrollment of this journey wants to receive."""
        return frozenset(cls.goals) | frozenset(cls.exits) | frozenset(cls.waits_for)

    @classmethod
    def workflow_type(cls) -> str:
        return f"{cls.name}.v{cls.version}"

    # ----- handlers ----------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: Event) -> None:
        if event.id in self._seen_event_ids:
            return
        self._seen_event_ids.add(event.id)
        if self._status != "active" or not self._is_for_this_key(event):
            return
        if event.name in self.exits:
            self._end("exited", f"event:{event.name}")
        elif _matches(event.name, self.goals):
            self._goal_event = event
            self._end("converted", f"event:{event.name}")
        elif _matches(event.name, self.waits_for):
            self._inbox.append((workflow.now(), event))

    @workflow.signal(name=EXIT_SIGNAL)
    def on_exit(self, request: ExitRequest) -> None:
        if self._status == "active":
            self._end("exited", request.reason)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> EnrollmentState:
        return EnrollmentState(
            workflow_id=workflow.info().workflow_id,
            journey=self.name,
            version=self.version,
            contact_id=self.contact_id,
            key=self.enrollment_key,
            status=self._status,
            current_step=self._current_step,
            waiting_for=list(self._waiting_for),
            wait_until=self._wait_until,
            steps=list(self._done),
            ended_by=self._ended_by,
            variants=dict(self.variants),
        )

    # ----- the run loop (called by the `run` method that `@journey` adds) ----------------

    async def _run(self) -> EnrollmentResult:
        self._window_start = workflow.now()
        self._lean, self._batched = self._bookkeeping()
        await self._record("entered")
        if self._status == "active":
            self._steps_task = asyncio.create_task(self.steps())
            try:
                await self._steps_task
            except (asyncio.CancelledError, ActivityError) as err:
                # A goal or exit cancels the steps: a timer raises CancelledError, an activity
                # in flight raises ActivityError. Both are expected once we have ended.
                if self._status == "active":
                    # Otherwise: an operator cancelled the workflow (recorded as an exit), or
                    # a bookkeeping activity failed for good (recorded as failed).
                    cancelled = isinstance(err, asyncio.CancelledError)
                    self._end("exited" if cancelled else "failed", _ending_reason(err))
                    await self._finish()
                    raise
        if self._status == "active":
            self._status = "completed"
        if self._status == "converted" and self.on_conversion_start:
            await self._hand_off(self.on_conversion_start)
        await self._finish()
        return EnrollmentResult(status=self._status, ended_by=self._ended_by, steps=self._done)

    def _bookkeeping(self) -> tuple[bool, bool]:
        """(lean, batched): the bookkeeping path this run's history holds. A run started
        lean (its input says so) asks for no patch; any other new run takes the lean path
        by the lean patch's marker alone (`patched` is asked in order and stops there)."""
        if self.enrollment.lean_bookkeeping or workflow.patched(LEAN_BOOKKEEPING):
            return True, True
        return False, workflow.patched(BATCHED_LIFECYCLE)

    async def _hand_off(self, other: str) -> None:
        """Start the journey a conversion leads to; a failure is logged, never a failed run."""
        step = f"hand_off_to_{other}"
        try:
            result = await self._start_journey(step, other, key=None, trigger=self._goal_event)
        except ActivityError as err:
            workflow.logger.warning("Hand-off to %s failed: %s", other, err.cause)
            outcome = f"failed: {_why(err)}"
        else:
            outcome = f"{result.action} {other}"
        self._done.append(StepRecord(name=step, kind="start", at=workflow.now(), outcome=outcome))
        await self._record("step", step=step, step_kind="start", outcome=outcome)

    async def _finish(self) -> None:
        # Where the enrollment was when it ended (None when it ran to the end), so the
        # enrollment list can say "converted during order_window".
        ended_in = self._current_step
        self._current_step = None
        self._waiting_for = []
        self._wait_until = None
        self._set_step_attribute(f"({self._status})")
        workflow.set_current_details(f"Ended: {self._status}" + self._ended_by_text())
        await self._record("ended", step=ended_in)

    def _end(self, status: Status, ended_by: str) -> None:
        self._status = status
        self._ended_by = ended_by
        if self._steps_task is not None and not self._steps_task.done():
            self._steps_task.cancel()

    def _ended_by_text(self) -> str:
        return f" ({self._ended_by})" if self._ended_by else ""

    def _is_for_this_key(self, event: Event) -> bool:
        if self.key is None or self.enrollment_key is None:
            return True
        value = event.properties.get(self.key)
        return value is None or str(value) == self.enrollment_key

    # ----- primitives --------------------------------------------------------------------

    async def send(
        self,
        step: str,
        *,
        template: str,
        channel: Channel = "email",
        context: dict[str, Any] | None = None,
        category: Category = "marketing",
        quiet_hours: QuietHours | None = None,
        on_cap: HoldPolicy = "skip",
    ) -> SendResult:
        """Send one message; never raises for a failed or suppressed send.

        Consent, quiet hours and frequency caps are checked by the send activity at send time.
        When it answers `deferred` (quiet hours or a cap with policy `defer`), the step waits
        on a durable timer until the moment it names and asks again, with the same message id.
        """
        # The send carries the records made so far and records its own outcome (see
        # `send_with_records`); "entered" too when the journey starts with a send, unless
        # sends have a task queue of their own, where a provider quota may hold them long.
        await self._begin(
            step,
            f"sending {channel} '{template}'",
            keeps_records=self.enrollment.send_task_queue is None,
        )
        info = workflow.info()
        request = SendRequest(
            message_id=self._message_id(step),
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            journey=self.name,
            version=self.version,
            step=step,
            contact_id=self.contact_id,
            channel=channel,
            template=template,
            context=context or {},
            trigger=self.trigger,
            category=category,
            quiet_hours=quiet_hours or self.quiet_hours,
            on_cap=on_cap,
            default_timezone=self.timezone,
            lifecycle=list(self._unrecorded) if self._lean else [],
            record_as=self._lifecycle_record("step", step=step, step_kind="send")
            if self._lean
            else None,
        )
        result = await self._send_until_done(request)
        await self._complete(step, "send", result.outcome, recorded=result.step_recorded)
        return result

    async def _send_until_done(self, request: SendRequest) -> SendResult:
        step = request.step
        while True:
            try:
                result: SendResult = await workflow.execute_activity(
                    SEND_MESSAGE,
                    request,
                    task_queue=self.enrollment.send_task_queue,
                    result_type=SendResult,
                    start_to_close_timeout=SEND_TIMEOUT,
                    schedule_to_close_timeout=SEND_GIVE_UP_AFTER,
                    heartbeat_timeout=SEND_HEARTBEAT_TIMEOUT,
                    retry_policy=SEND_RETRY,
                    summary=f"{step}: {request.channel} {request.template}"
                    + (f" (try {request.attempt})" if request.attempt > 1 else ""),
                )
            except ActivityError as err:
                if self._status != "active" or isinstance(err.cause, CancelledError):
                    raise  # the enrollment ended while the send was in flight
                workflow.logger.warning("Send %s failed for good: %s", step, err.cause)
                failed = SendResult(
                    message_id=request.message_id, status="failed", reason=_why(err)
                )
                if err.retry_state in (
                    RetryState.TIMEOUT,
                    RetryState.MAXIMUM_ATTEMPTS_REACHED,
                ) and workflow.patched(RECORD_GIVEN_UP_SENDS):
                    return await self._record_given_up(request, failed)
                return failed
            if result.lifecycle_written:
                # The activity wrote them: they are the oldest in the buffer.
                del self._unrecorded[: len(request.lifecycle)]
                request = dataclasses.replace(request, lifecycle=[])
            if result.status != "deferred" or result.retry_at is None:
                return result
            if request.attempt >= MAX_DEFERRALS:
                return SendResult(
                    message_id=request.message_id, status="suppressed", reason="deferred_too_long"
                )
            delay = max(result.retry_at - workflow.now(), timedelta(seconds=1))
            self._wait_until = result.retry_at
            workflow.set_current_details(
                f"Step {step}: held back ({result.reason}) until "
                f"{result.retry_at:%Y-%m-%d %H:%M} UTC"
            )
            if self._lean:
                self._show_step(step)  # held back, possibly for hours: where it waits
            await self._flush_lifecycle()
            await workflow.sleep(delay, summary=f"{step}: held back ({result.reason})")
            request = dataclasses.replace(request, attempt=request.attempt + 1)

    async def _record_given_up(self, request: SendRequest, failed: SendResult) -> SendResult:
        """Temporal stopped retrying a send (a day of provider errors): have the activity
        record it failed, so the message log agrees and the message holds no cap slot.

        The step keeps its usual `failed: <error type>` outcome, unless the log shows the
        message went out after all (an attempt whose answer was lost).
        """
        try:
            settled: SendResult = await workflow.execute_activity(
                SEND_MESSAGE,
                # Only the message log: the step's outcome is the workflow's to record here.
                dataclasses.replace(
                    request, give_up=failed.reason or "gave_up", lifecycle=[], record_as=None
                ),
                task_queue=self.enrollment.send_task_queue,
                result_type=SendResult,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                retry_policy=BOOKKEEPING_RETRY,
                summary=f"{request.step}: record as failed",
            )
        except ActivityError as err:
            if self._status != "active" or isinstance(err.cause, CancelledError):
                raise
            return failed
        return failed if settled.status == "failed" else settled

    async def webhook(
        self,
        step: str,
        *,
        payload: dict[str, Any],
        url: str | None = None,
        category: Category = "transactional",
    ) -> SendResult:
        """POST a signed JSON payload to the team's own service (JOURNEYMAN_WEBHOOK_URL or `url`).

        Transactional by default: the receiving service applies its own rules. Pass
        `category="marketing"` to have quiet hours and caps applied here first.
        """
        return await self.send(
            step,
            template="",
            channel="webhook",
            context={"payload": payload, "url": url},
            category=category,
        )

    async def wait_until_local(
        self, step: str, at: str, *, weekdays: Sequence[int] | None = None
    ) -> datetime:
        """Wait until the next `at` (HH:MM) in the contact's own timezone, on `weekdays`
        (0 = Monday; default every day). Correct across DST: see `activities/localtime.py`.

        The contact's zone is read when the step starts (fallback: the journey's `timezone`,
        then the global default); returns the UTC instant it waited for.
        """
        await self._begin(step, f"finding the next {at} local time", waits=True)
        resolved: LocalTimeResult = await workflow.execute_local_activity(
            NEXT_LOCAL_TIME,
            LocalTimeRequest(
                contact_id=self.contact_id,
                time=at,
                after=workflow.now(),
                weekdays=list(weekdays) if weekdays else None,
                default_timezone=self.timezone,
            ),
            result_type=LocalTimeResult,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=DEFINITION_RETRY,
            summary=f"{step}: next {at} local",
        )
        self._wait_until = resolved.at
        workflow.set_current_details(f"Step {step}: waiting until {at} {resolved.timezone}")
        await self._flush_lifecycle()
        await workflow.sleep(max(resolved.at - workflow.now(), timedelta(0)), summary=step)
        self._window_start = workflow.now()
        await self._complete(step, "wait_until_local", f"waited until {at} {resolved.timezone}")
        return resolved.at

    async def split(self, step: str, variants: dict[str, int], *, holdout: int = 0) -> str:
        """Assign the contact to a variant (weights in `variants`) or to the holdout group.

        `holdout` is a percentage taken first; the variants share the rest by weight. The draw
        is a hash of contact, journey and step, so it is the same across replays, retries and
        re-entries. Returns the variant name or "holdout"; the holdout group should get no
        message here but stays enrolled, so its goals still count for measuring lift.
        """
        await self._begin(step, "assigning a variant", keeps_records=True)
        try:
            variant = assign_variant(self.contact_id, self.name, step, variants, holdout)
        except ValueError as err:
            raise ApplicationError(
                str(err), type=ERR_JOURNEY_DEFINITION, non_retryable=True
            ) from err
        self.variants[step] = variant
        await self._complete(step, "split", f"variant {variant}")
        return variant

    async def wait(self, step: str, duration: timedelta) -> None:
        """A durable timer: survives worker and server restarts, holds no worker memory."""
        until = workflow.now() + duration
        await self._begin(
            step, f"waiting {_human(duration)} (until {until:%Y-%m-%d %H:%M} UTC)", waits=True
        )
        self._wait_until = until
        await self._flush_lifecycle()
        await workflow.sleep(duration, summary=step)
        self._window_start = workflow.now()
        await self._complete(step, "wait", "waited")

    async def wait_for(
        self,
        step: str,
        events: str | Sequence[str],
        timeout: timedelta,  # noqa: ASYNC109 - a durable timer in the journey's own words
    ) -> Event | None:
        """Wait up to `timeout` for one of `events`; returns it, or None on timeout.

        An event counts if it arrived since the previous wait ended (so one that lands while
        a send is in flight is not lost) and no earlier `wait_for` took it.
        """
        names = [events] if isinstance(events, str) else list(events)
        undeclared = sorted(set(names) - set(self.waits_for))
        if undeclared:
            raise ApplicationError(
                f"{self.name} waits for {undeclared} without declaring them in `waits_for`",
                type=ERR_JOURNEY_DEFINITION,
                non_retryable=True,
            )
        until = workflow.now() + timeout
        await self._begin(
            step, f"waiting up to {_human(timeout)} for {' or '.join(names)}", waits=True
        )
        self._waiting_for = names
        self._wait_until = until
        found: list[Event] = []

        def arrived() -> bool:
            match = self._take(names)
            if match is not None:
                found.append(match)
            return bool(found)

        await self._flush_lifecycle()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(arrived, timeout=timeout, timeout_summary=step)
        self._window_start = workflow.now()
        self._inbox.clear()
        event = found[0] if found else None
        await self._complete(step, "wait_for", f"received {event.name}" if event else "timed out")
        return event

    async def read_contact(self, step: str) -> ContactSnapshot:
        """A fresh snapshot of the contact, for branching on current data."""
        await self._begin(step, "reading the contact profile")
        snapshot: ContactSnapshot = await workflow.execute_activity(
            READ_CONTACT,
            ContactRequest(contact_id=self.contact_id),
            result_type=ContactSnapshot,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
            summary=f"{step}: read contact",
        )
        await self._complete(step, "read_contact", "read")
        return snapshot

    async def in_segment(self, step: str, segment: str) -> bool:
        """Whether the contact is a member of `segment` now (see `journeyman/segments`)."""
        await self._begin(step, f"checking membership of segment {segment}")
        result: SegmentCheckResult = await workflow.execute_activity(
            IN_SEGMENT,
            SegmentCheck(contact_id=self.contact_id, segment=segment, at=workflow.now()),
            result_type=SegmentCheckResult,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=DEFINITION_RETRY,
            summary=f"{step}: in segment {segment}?",
        )
        await self._complete(step, "in_segment", "member" if result.member else "not a member")
        return result.member

    async def update_contact(
        self,
        step: str,
        *,
        attributes: dict[str, Any] | None = None,
        dormant: bool | None = None,
        reason: str = "",
    ) -> ContactUpdateResult:
        """Change the contact: merge `attributes` (None values remove), mark or clear
        `dormant` (a dormant contact gets no marketing email until active again)."""
        await self._begin(step, "updating the contact")
        result: ContactUpdateResult = await workflow.execute_activity(
            UPDATE_CONTACT,
            ContactUpdate(
                contact_id=self.contact_id,
                attributes=dict(attributes or {}),
                dormant=dormant,
                reason=reason or f"{self.name}:{step}",
            ),
            result_type=ContactUpdateResult,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
            summary=f"{step}: update contact",
        )
        changed = ", ".join(result.changed) or "nothing changed"
        await self._complete(step, "update_contact", changed)
        return result

    async def start(
        self, step: str, other: type[Journey] | str, *, key: str | None = None
    ) -> StartJourneyResult:
        """Hand the contact on to another journey (its own re-entry rule applies)."""
        name = other if isinstance(other, str) else other.name
        await self._begin(step, f"starting journey {name}")
        result = await self._start_journey(step, name, key=key, trigger=self.trigger)
        await self._complete(step, "start", f"{result.action} {name}")
        return result

    async def _start_journey(
        self, step: str, name: str, *, key: str | None, trigger: Event | None
    ) -> StartJourneyResult:
        result: StartJourneyResult = await workflow.execute_activity(
            START_JOURNEY,
            StartJourneyRequest(
                journey=name,
                contact_id=self.contact_id,
                key=key,
                trigger=trigger,
                started_by=workflow.info().workflow_id,
            ),
            result_type=StartJourneyResult,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
                non_retryable_error_types=[ERR_UNKNOWN_JOURNEY],
            ),
            summary=f"{step}: start {name}",
        )
        return result

    async def notify_sales(
        self,
        step: str,
        *,
        subject: str,
        template: str,
        context: dict[str, Any] | None = None,
    ) -> SalesNotificationResult:
        """Tell sales about this contact: a CRM task for the owner and an internal email.

        The CRM task is queued for the CRM sync, so a CRM outage delays the task but never
        this journey; the email goes to JOURNEYMAN_SALES_EMAIL. Both happen once per step.
        A notification that fails for good (a template error, a day of errors) is recorded
        as the step's outcome `failed: <error type>` and the journey goes on.
        """
        await self._begin(step, "notifying sales")
        info = workflow.info()
        notification = SalesNotification(
            notification_id=self._message_id(step),
            workflow_id=info.workflow_id,
            journey=self.name,
            step=step,
            contact_id=self.contact_id,
            subject=subject,
            template=template,
            context=context or {},
        )
        try:
            result: SalesNotificationResult = await workflow.execute_activity(
                NOTIFY_SALES,
                notification,
                result_type=SalesNotificationResult,
                start_to_close_timeout=SEND_TIMEOUT,
                schedule_to_close_timeout=SEND_GIVE_UP_AFTER,
                retry_policy=SEND_RETRY,
                summary=f"{step}: notify sales",
            )
        except ActivityError as err:
            if self._status != "active" or isinstance(err.cause, CancelledError):
                raise  # the enrollment ended while the notification was in flight
            # Like a failed send: recorded on the step, and the journey goes on (the contact
            # still gets what comes next), rather than the whole enrollment failing.
            workflow.logger.warning("Sales notification %s failed for good: %s", step, err.cause)
            failed = f"failed: {_why(err)}"
            await self._complete(step, "notify_sales", failed)
            return SalesNotificationResult(
                notification_id=notification.notification_id, task_queued=False, email=failed
            )
        queued = "task queued" if result.task_queued else "no CRM task"
        await self._complete(step, "notify_sales", f"{queued}, email {result.email}")
        return result

    # ----- bookkeeping -------------------------------------------------------------------

    def _take(self, names: Sequence[str]) -> Event | None:
        for index, (received, event) in enumerate(self._inbox):
            if _matches(event.name, names) and (
                self._window_start is None or received >= self._window_start
            ):
                del self._inbox[index]
                return event
        return None

    def _message_id(self, step: str) -> str:
        # Stable across retries, replays and continue-as-new, distinct across re-entries.
        info = workflow.info()
        return f"{info.workflow_id}:{info.first_execution_run_id}:{step}"

    async def _begin(
        self, step: str, doing: str, *, waits: bool = False, keeps_records: bool = False
    ) -> None:
        """Start a step. `waits`: it holds the enrollment on a durable timer. `keeps_records`:
        its commands may come before this enrollment's "entered" is written (a send carries
        it; a split issues none); any other step of a lean run writes "entered" first, since
        routing finds running enrollments by that row."""
        if self._status != "active":
            # The enrollment ended while the previous step finished in the same moment (the
            # cancellation lost the race with the step's result): stop before the next one.
            raise asyncio.CancelledError
        if step in self._used_step_names:
            raise ApplicationError(
                f"{self.name} uses step name '{step}' twice; step names must be unique "
                "because message ids and stats are keyed by them",
                type=ERR_JOURNEY_DEFINITION,
                non_retryable=True,
            )
        self._used_step_names.add(step)
        self._current_step = step
        self._waiting_for = []
        self._wait_until = None
        if not self._lean:
            self._set_step_attribute(step)
        elif waits:
            self._show_step(step)
        workflow.set_current_details(f"Step {step}: {doing}")
        if self._lean and (
            waits or (not keeps_records and any(r.kind == "entered" for r in self._unrecorded))
        ):
            await self._flush_lifecycle()

    async def _complete(
        self, step: str, kind: str, outcome: str, *, recorded: bool = False
    ) -> None:
        """Finish a step; `recorded`: its activity has written the step's record already."""
        self._done.append(StepRecord(name=step, kind=kind, at=workflow.now(), outcome=outcome))
        self._current_step = None
        self._waiting_for = []
        self._wait_until = None
        if not recorded:
            await self._record("step", step=step, step_kind=kind, outcome=outcome)

    def _set_step_attribute(self, step: str) -> None:
        workflow.upsert_search_attributes([JOURNEY_STEP.value_set(step)])

    def _show_step(self, step: str) -> None:
        """Lean runs: set `JourneyStep` unless it says so already (an upsert is a history
        event and a visibility write). The SDK keeps `info()`'s attributes as last set."""
        if step != workflow.info().typed_search_attributes.get(JOURNEY_STEP):
            self._set_step_attribute(step)

    async def _record(
        self,
        kind: LifecycleKind,
        *,
        step: str | None = None,
        step_kind: str | None = None,
        outcome: str | None = None,
    ) -> None:
        record = self._lifecycle_record(kind, step=step, step_kind=step_kind, outcome=outcome)
        if self._batched:
            self._unrecorded.append(record)
            # "entered" at once: routing finds running enrollments by their row (an exit of a
            # keyed journey, goals on any event) and a `never` journey checks it for re-entry.
            # (A lean run writes it with its first step instead: see `_begin`.) The steps
            # wait for a send to carry them, the next durable wait or the end.
            if kind == "ended" or (kind == "entered" and not self._lean):
                await self._flush_lifecycle()
            return
        # A local activity: bookkeeping should not cost a task-queue round trip per step.
        await workflow.execute_local_activity(
            RECORD_LIFECYCLE,
            record,
            result_type=LifecycleAck,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
            summary=f"record {kind}" + (f" {step}" if step else ""),
        )

    def _lifecycle_record(
        self,
        kind: LifecycleKind,
        *,
        step: str | None = None,
        step_kind: str | None = None,
        outcome: str | None = None,
    ) -> LifecycleRecord:
        info = workflow.info()
        return LifecycleRecord(
            workflow_id=info.workflow_id,
            run_id=info.first_execution_run_id,
            journey=self.name,
            version=self.version,
            contact_id=self.contact_id,
            key=self.enrollment_key,
            kind=kind,
            at=workflow.now(),
            status=self._status,
            step=step,
            step_kind=step_kind,
            outcome=outcome if kind != "ended" else self._ended_by,
            trigger_event_id=self.trigger.id if self.trigger else None,
        )

    async def _flush_lifecycle(self) -> None:
        """Write the buffered lifecycle records, in one local activity and one transaction.

        Called before every durable wait, so stats are current while an enrollment waits
        (for days, possibly), and at the end. Nothing is lost on a crash: the buffer is
        rebuilt by replay. A flush cancelled by a goal or exit keeps its records, and the
        ending's flush writes them (the activity is safe to repeat).
        """
        if not self._unrecorded:
            return
        records = list(self._unrecorded)
        # No summary: the activity's type says what it does, and a summary is one more
        # payload to encode per flush (summaries are not compared on replay).
        await workflow.execute_local_activity(
            RECORD_LIFECYCLE_BATCH,
            LifecycleBatch(records=records),
            result_type=LifecycleBatchAck,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
        )
        del self._unrecorded[: len(records)]


J = TypeVar("J", bound=type[Journey])


def journey(cls: J) -> J:
    """Validate a journey class and make it a Temporal workflow named `<name>.v<version>`."""
    _validate(cls)

    def __init__(self: Journey, enrollment: EnrollmentInput) -> None:
        Journey.__init__(self, enrollment)

    async def run(self: Journey, enrollment: EnrollmentInput) -> EnrollmentResult:
        return await self._run()

    # The SDK wants `run` and `__init__` defined on the class itself, in its module.
    for fn, attr in ((__init__, "__init__"), (run, "run")):
        fn.__module__ = cls.__module__
        fn.__qualname__ = f"{cls.__name__}.{attr}"
        fn.__annotations__ = {
            "enrollment": EnrollmentInput,
            "return": EnrollmentResult if attr == "run" else None,
        }
    cls.__init__ = workflow.init(__init__)  # type: ignore[method-assign]
    setattr(cls, "run", workflow.run(run))  # noqa: B010 - attribute added to a class object
    defined: J = workflow.defn(name=cls.workflow_type())(cls)
    return defined


def _validate(cls: type[Journey]) -> None:
    problems: list[str] = []
    if not getattr(cls, "name", None):
        problems.append("`name` is required")
    if cls.version < 1:
        problems.append("`version` must be 1 or more")
    if cls.reentry not in ("never", "after_exit", "always"):
        problems.append(f"`reentry` must be never, after_exit or always, not {cls.reentry!r}")
    overlap = set(cls.triggers) & (set(cls.goals) | set(cls.exits))
    if overlap:
        problems.append(f"events {sorted(overlap)} cannot both trigger and end the journey")
    if cls.steps is Journey.steps:
        problems.append("`steps()` must be written")
    if problems:
        raise TypeError(f"Journey {cls.__name__}: " + "; ".join(problems))


def journey_search_attributes(cls: type[Journey], contact_id: str) -> TypedSearchAttributes:
    """The search attributes an enrollment starts with."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOURNEY_NAME, cls.name),
            SearchAttributePair(JOURNEY_VERSION, cls.version),
            SearchAttributePair(CONTACT_ID, contact_id),
            SearchAttributePair(JOURNEY_STEP, "(starting)"),
        ]
    )


def _matches(name: str, declared: Sequence[str]) -> bool:
    """Whether an event name is among `declared`, where ANY_EVENT stands for any behaviour
    event (lead.* events follow from behaviour already counted)."""
    if name in declared:
        return True
    return ANY_EVENT in declared and not name.startswith("lead.")


def _ending_reason(err: BaseException) -> str:
    if isinstance(err, asyncio.CancelledError):
        return "cancelled"
    return f"activity_failed:{_why(err)}" if isinstance(err, ActivityError) else "error"


def _why(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__ if cause else "activity_error"


def _human(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = [
    "Event",
    "Journey",
    "journey",
    "journey_search_attributes",
    "workflow_id_for",
]
