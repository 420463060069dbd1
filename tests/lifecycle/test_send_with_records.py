"""`send_with_records`: what a send activity writes of the lifecycle records its journey hands
it, and when: an "entered" before sending, whatever happens next; the rest with the step's
own outcome, in one write; nothing it did not write is reported as written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from temporalio.testing import ActivityEnvironment

from activities.lifecycle import send_with_records
from workflows.contracts import LifecycleRecord, SendRequest, SendResult

from .test_batch_activity import record, step

SCHEDULED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class Writes:
    def __init__(self) -> None:
        self.calls: list[list[LifecycleRecord]] = []

    async def __call__(self, records: Sequence[LifecycleRecord]) -> None:
        self.calls.append(list(records))


def request(*carried: LifecycleRecord, record_as: bool = True) -> SendRequest:
    return SendRequest(
        message_id="m-1",
        workflow_id="journey:abandoned_cart:c-42:cart-7",
        run_id="r-1",
        journey="abandoned_cart",
        version=2,
        step="first_reminder",
        contact_id="c-42",
        channel="email",
        template="abandoned_cart/reminder",
        lifecycle=list(carried),
        record_as=record("r-1", "step", step="first_reminder", step_kind="send")
        if record_as
        else None,
    )


def answering(status: str, reason: str | None = None) -> SendResult:
    return SendResult(message_id="m-1", status=status, reason=reason)  # type: ignore[arg-type]


async def run(writes: Writes, send_request: SendRequest, result: SendResult) -> SendResult:
    async def send() -> SendResult:
        return result

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=SCHEDULED)
    return await env.run(send_with_records, writes, send_request, send)


async def test_the_carried_steps_and_the_outcome_go_in_one_write() -> None:
    writes = Writes()
    waited = step("r-1", "grace_period", 60, outcome="waited")

    result = await run(writes, request(waited), answering("suppressed", "unsubscribed"))

    [written] = writes.calls
    assert written[0] == waited
    assert (written[1].step, written[1].outcome, written[1].at) == (
        "first_reminder",
        "suppressed: unsubscribed",
        SCHEDULED,
    )
    assert (result.lifecycle_written, result.step_recorded) == (True, True)
    assert (result.status, result.reason) == ("suppressed", "unsubscribed")


async def test_entered_is_written_before_the_send_even_if_the_send_fails() -> None:
    writes = Writes()
    entered = record("r-1", "entered")

    async def provider_down() -> SendResult:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        await ActivityEnvironment().run(send_with_records, writes, request(entered), provider_down)

    assert writes.calls == [[entered]]


async def test_a_failed_attempt_writes_no_carried_step() -> None:
    # The journey keeps them buffered: a later attempt or its own flush writes them.
    writes = Writes()

    async def provider_down() -> SendResult:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        await ActivityEnvironment().run(
            send_with_records, writes, request(step("r-1", "grace_period", 60)), provider_down
        )

    assert writes.calls == []


async def test_a_deferred_send_writes_what_it_carried_but_no_outcome() -> None:
    writes = Writes()
    waited = step("r-1", "grace_period", 60, outcome="waited")

    result = await run(writes, request(waited), answering("deferred", "quiet_hours"))

    assert writes.calls == [[waited]]
    assert (result.lifecycle_written, result.step_recorded) == (True, False)


async def test_a_send_of_a_run_before_the_patch_writes_nothing() -> None:
    # Runs on the batched path hand their sends no records: they write their own.
    writes = Writes()

    result = await run(writes, request(record_as=False), answering("sent"))

    assert writes.calls == []
    assert (result.lifecycle_written, result.step_recorded) == (False, False)
