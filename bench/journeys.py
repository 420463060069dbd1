"""The journeys the runtime and wake-up benchmarks run, written twice: with Journeyman's
runtime, and as the plain Temporal workflow a team would write by hand.

Both sides take the same input (an `EnrollmentInput` whose trigger carries the timings), call
the same `send_message` activity with the same request, options and retry policy, and receive
the reply through the same `event` signal; what differs is only what the runtime adds (the
state query, step records for stats, the `JourneyStep` search attribute, goals and exits).
They live here, not in workflows/, so the catalog, README and replay tests never see them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        EVENT_SIGNAL,
        SEND_MESSAGE,
        EnrollmentInput,
        Event,
        SendRequest,
        SendResult,
    )
    from workflows.runtime import (
        SEND_GIVE_UP_AFTER,
        SEND_RETRY,
        SEND_TIMEOUT,
        Journey,
        journey,
    )

TEMPLATE = "welcome_series/welcome"
REPLY = "bench_reply"
# Trigger properties: seconds of the wait, of the wait_for's timeout, and the wake-up's due time.
WAIT = "wait_seconds"
WAIT_FOR = "wait_for_seconds"
DUE = "due"


def _seconds(enrollment: EnrollmentInput, name: str) -> timedelta:
    trigger = enrollment.trigger
    return timedelta(seconds=float(trigger.properties[name])) if trigger else timedelta(0)


def _until_due(enrollment: EnrollmentInput) -> timedelta:
    trigger = enrollment.trigger
    if trigger is None:
        return timedelta(0)
    due = datetime.fromisoformat(str(trigger.properties[DUE]))
    # At least a millisecond: a zero-length timer is no timer at all.
    return max(due - workflow.now(), timedelta(milliseconds=1))


# ----- Journeyman ----------------------------------------------------------------------------


@journey
class RuntimeJourney(Journey):
    name = "bench_runtime"
    description = "Benchmark: send, wait, wait for a reply, send."
    triggers = ("bench_started",)
    waits_for = (REPLY,)
    reentry = "always"

    async def steps(self) -> None:
        await self.send("first", template=TEMPLATE)
        await self.wait("pause", _seconds(self.enrollment, WAIT))
        await self.wait_for("reply", REPLY, _seconds(self.enrollment, WAIT_FOR))
        await self.send("second", template=TEMPLATE)


@journey
class WakeupJourney(Journey):
    name = "bench_wakeup"
    description = "Benchmark: wait until a common due time, then send."
    triggers = ("bench_started",)
    reentry = "always"

    async def steps(self) -> None:
        await self.wait("until_due", _until_due(self.enrollment))
        await self.send("due", template=TEMPLATE)


# ----- plain Temporal ------------------------------------------------------------------------


class _RawBase:
    name = "raw"

    def __init__(self) -> None:
        # When each reply arrived: only one that came after the wait ended counts, as in
        # Journeyman's `wait_for` (so both sides take the same path for the same signals).
        self.replies: list[datetime] = []

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, event: Event) -> None:
        if event.name == REPLY:
            self.replies.append(workflow.now())

    async def send(self, enrollment: EnrollmentInput, step: str) -> SendResult:
        info = workflow.info()
        request = SendRequest(
            message_id=f"{info.workflow_id}:{info.first_execution_run_id}:{step}",
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            journey=self.name,
            version=1,
            step=step,
            contact_id=enrollment.contact_id,
            channel="email",
            template=TEMPLATE,
            trigger=enrollment.trigger,
        )
        result: SendResult = await workflow.execute_activity(
            SEND_MESSAGE,
            request,
            result_type=SendResult,
            start_to_close_timeout=SEND_TIMEOUT,
            schedule_to_close_timeout=SEND_GIVE_UP_AFTER,
            retry_policy=SEND_RETRY,
        )
        return result


@workflow.defn(name="bench_raw_runtime")
class RawRuntime(_RawBase):
    name = "bench_raw_runtime"

    @workflow.run
    async def run(self, enrollment: EnrollmentInput) -> str:
        await self.send(enrollment, "first")
        await workflow.sleep(_seconds(enrollment, WAIT))
        window = workflow.now()
        outcome = "replied"
        try:
            await workflow.wait_condition(
                lambda: any(at >= window for at in self.replies),
                timeout=_seconds(enrollment, WAIT_FOR),
            )
        except TimeoutError:
            outcome = "timed_out"
        await self.send(enrollment, "second")
        return outcome


@workflow.defn(name="bench_raw_wakeup")
class RawWakeup(_RawBase):
    name = "bench_raw_wakeup"

    @workflow.run
    async def run(self, enrollment: EnrollmentInput) -> str:
        await workflow.sleep(_until_due(enrollment))
        await self.send(enrollment, "due")
        return "completed"


JOURNEYMAN_WORKFLOWS = (RuntimeJourney, WakeupJourney)
RAW_WORKFLOWS = (RawRuntime, RawWakeup)
