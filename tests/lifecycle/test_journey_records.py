"""A journey on the time-skipping server with the real lifecycle activities and the real
record-carrying send wrapper: lean bookkeeping (records riding on sends) and batched records
leave the same rows as one record at a time, in fewer local activities and upserts, and
replay."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.lifecycle import LifecycleRecorder, lifecycle_writer, send_with_records
from persistence import Database, Enrollment, EnrollmentStep
from tests.conftest import start_time_env
from tests.lifecycle.probe_journeys import (
    BATCHED_UPSERTS,
    BATCHED_WRITES,
    LEAN_UPSERTS,
    LEAN_WRITES,
    REPLY,
    UNBATCHED_WRITES,
    BatchedProbe,
    LeanProbe,
    UnbatchedProbe,
    _Probe,
)
from workflows.contracts import (
    EVENT_SIGNAL,
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    SEND_MESSAGE,
    STATE_QUERY,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentState,
    Event,
    SendRequest,
    SendResult,
    workflow_id_for,
)
from workflows.runtime import journey_search_attributes

PROBES = [LeanProbe, BatchedProbe, UnbatchedProbe]
# What the scenario does while the enrollment runs (None: let it run to its end).
Drive = Callable[["Probe"], Awaitable[None]]


@dataclass
class Probe:
    handle: WorkflowHandle[Any, EnrollmentResult]
    contact_id: str
    held: asyncio.Event

    async def reaches(self, step: str) -> None:
        for _ in range(400):
            state = await self.handle.query(STATE_QUERY, result_type=EnrollmentState)
            if state.current_step == step:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never reached {step}")

    async def event(self, name: str) -> None:
        event = Event(id=uuid.uuid4().hex, contact_id=self.contact_id, name=name)
        await self.handle.signal(EVENT_SIGNAL, event)


@dataclass(frozen=True)
class Outcome:
    result: EnrollmentResult
    enrollment: tuple[Any, ...]
    steps: list[tuple[Any, ...]]
    writes: Counter[str]
    upserts: int
    handle: WorkflowHandle[Any, EnrollmentResult]


@asynccontextmanager
async def probe_worker(
    env: WorkflowEnvironment, database: Database, hold_step: str | None
) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A worker for both probes; the send of `hold_step` stays in flight until cancelled."""
    held = asyncio.Event()

    async def deliver(request: SendRequest) -> SendResult:
        if request.step == hold_step:
            held.set()
            while True:  # until the enrollment ends and cancels it (heartbeats deliver that)
                activity.heartbeat()
                await asyncio.sleep(0.1)
        return SendResult(message_id=request.message_id, status="sent")

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(request: SendRequest) -> SendResult:
        # The provider is faked; the records a lean run hands its sends are written for real.
        return await send_with_records(
            lifecycle_writer(database).submit, request, functools.partial(deliver, request)
        )

    task_queue = f"lifecycle-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=PROBES,
        activities=[send_message, *LifecycleRecorder(database).activities()],
    ):
        yield task_queue, held


async def run_probe(
    env: WorkflowEnvironment,
    database: Database,
    cls: type[_Probe],
    drive: Drive | None = None,
    hold_step: str | None = None,
    *,
    started_lean: bool = False,
    own_send_queue: bool = False,
) -> Outcome:
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    trigger = Event(id=uuid.uuid4().hex, contact_id=contact_id, name=cls.triggers[0])
    async with probe_worker(env, database, hold_step) as (task_queue, held):
        handle = await env.client.start_workflow(
            cls.workflow_type(),
            EnrollmentInput(
                contact_id=contact_id,
                trigger=trigger,
                lean_bookkeeping=started_lean,
                # The same queue, named as a queue of its own (the probe's worker serves one).
                send_task_queue=task_queue if own_send_queue else None,
            ),
            id=workflow_id_for(cls.name, contact_id),
            task_queue=task_queue,
            search_attributes=journey_search_attributes(cls, contact_id),
            result_type=EnrollmentResult,
        )
        if drive is not None:
            await drive(Probe(handle, contact_id, held))
        result = await handle.result()
    enrollment, steps = await stored(database, handle.id)
    writes, upserts = await bookkeeping_commands(handle)
    return Outcome(result, enrollment, steps, writes, upserts, handle)


async def stored(database: Database, workflow_id: str) -> tuple[tuple[Any, ...], list[Any]]:
    """The rows, without what differs between two runs: ids, names and instants (the pause
    passes in real time, so those differ by a second or so under load); the steps in the
    order of their `at`."""
    async with database.session() as session:
        row = (
            await session.exec(select(Enrollment).where(col(Enrollment.workflow_id) == workflow_id))
        ).one()
        found = await session.exec(
            select(EnrollmentStep)
            .where(col(EnrollmentStep.run_id) == row.run_id)
            .order_by(col(EnrollmentStep.at), col(EnrollmentStep.id))
        )
        steps = list(found.all())
    assert row.ended_at is not None and all(s.at <= row.ended_at for s in steps)
    enrollment = (row.status, row.current_step, row.ended_by)
    return enrollment, [(s.step, s.kind, s.outcome) for s in steps]


async def bookkeeping_commands(handle: WorkflowHandle[Any, Any]) -> tuple[Counter[str], int]:
    """Local activities by type, from the history's markers (one per local activity), and
    the number of search-attribute upserts."""
    found: Counter[str] = Counter()
    upserts = 0
    async for event in handle.fetch_history_events():
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            upserts += 1
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" in details and details["data"].payloads:
            found[json.loads(details["data"].payloads[0].data).get("activity_type", "")] += 1
    return found, upserts


async def exit_while_waiting(probe: Probe) -> None:
    await probe.reaches("pause")
    await probe.event("probe_exit")


async def exit_while_a_send_is_in_flight(probe: Probe) -> None:
    # "reply" ends just before the send: its record is still buffered when the exit comes.
    await probe.reaches("reply")
    await probe.event(REPLY)
    await probe.held.wait()
    await probe.event("probe_exit")


SCENARIOS: dict[str, tuple[Drive | None, str | None]] = {
    "completes": (None, None),
    "exit_while_waiting": (exit_while_waiting, None),
    "exit_while_a_send_is_in_flight": (exit_while_a_send_is_in_flight, "second"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_lean_and_batched_records_leave_the_same_rows_in_fewer_commands(
    time_env: WorkflowEnvironment, database: Database, scenario: str
) -> None:
    drive, hold = SCENARIOS[scenario]
    # A send cut off by the ending leaves the test server's clock held for good: that
    # scenario takes a server of its own (see tests/conftest.py).
    env = await start_time_env() if hold else time_env
    try:
        unbatched = await run_probe(env, database, UnbatchedProbe, drive, hold)
        batched = await run_probe(env, database, BatchedProbe, drive, hold)
        lean = await run_probe(env, database, LeanProbe, drive, hold)
    finally:
        if env is not time_env:
            await env.shutdown()

    for probe in (batched, lean):
        assert (probe.enrollment, probe.steps) == (unbatched.enrollment, unbatched.steps)
        assert probe.result.status == unbatched.result.status
        assert probe.writes[RECORD_LIFECYCLE] == 0
        assert probe.writes[RECORD_LIFECYCLE_BATCH] < unbatched.writes[RECORD_LIFECYCLE]
    assert unbatched.writes[RECORD_LIFECYCLE_BATCH] == 0
    assert lean.writes[RECORD_LIFECYCLE_BATCH] < batched.writes[RECORD_LIFECYCLE_BATCH]
    assert lean.upserts < batched.upserts == unbatched.upserts
    if scenario == "completes":
        assert unbatched.writes[RECORD_LIFECYCLE] == UNBATCHED_WRITES
        assert batched.writes[RECORD_LIFECYCLE_BATCH] == BATCHED_WRITES
        assert lean.writes[RECORD_LIFECYCLE_BATCH] == LEAN_WRITES
        assert (batched.upserts, lean.upserts) == (BATCHED_UPSERTS, LEAN_UPSERTS)
        assert [s[0] for s in lean.steps] == ["first", "pick", "pause", "reply", "second"]
        assert lean.enrollment[:2] == ("completed", "second")
    elif scenario == "exit_while_waiting":
        assert [s[0] for s in lean.steps] == ["first", "pick"]
        assert lean.enrollment[:3] == ("exited", "pause", "event:probe_exit")
    else:
        # "reply" rode on the second send, which the exit cut off: written either way.
        assert [s[0] for s in lean.steps] == ["first", "pick", "pause", "reply"]
        assert lean.steps[-1][2] == f"received {REPLY}"
        assert lean.enrollment[:3] == ("exited", "second", "event:probe_exit")


async def test_a_run_started_lean_asks_for_no_patch(
    time_env: WorkflowEnvironment, database: Database
) -> None:
    # Journeyman's starters say so in the input: the same path, minus the patch marker and
    # the `TemporalChangeVersion` upsert that comes with it.
    by_marker = await run_probe(time_env, database, LeanProbe)
    by_input = await run_probe(time_env, database, LeanProbe, started_lean=True)

    assert (by_input.enrollment, by_input.steps) == (by_marker.enrollment, by_marker.steps)
    assert by_input.writes == by_marker.writes
    assert by_input.upserts == by_marker.upserts - 1
    assert await patch_markers(by_marker.handle) == 1
    assert await patch_markers(by_input.handle) == 0


async def test_entered_does_not_wait_on_a_send_queue_of_its_own(
    time_env: WorkflowEnvironment, database: Database
) -> None:
    # A provider quota on JOURNEYMAN_SEND_TASK_QUEUE may hold sends for long, and routing finds
    # running enrollments by their "entered" row: that one gets a local activity of its own.
    carried = await run_probe(time_env, database, LeanProbe, started_lean=True)
    queued = await run_probe(time_env, database, LeanProbe, started_lean=True, own_send_queue=True)

    assert (queued.enrollment, queued.steps) == (carried.enrollment, carried.steps)
    assert queued.writes[RECORD_LIFECYCLE_BATCH] == carried.writes[RECORD_LIFECYCLE_BATCH] + 1


async def patch_markers(handle: WorkflowHandle[Any, Any]) -> int:
    return len(
        [
            event
            async for event in handle.fetch_history_events()
            if event.HasField("marker_recorded_event_attributes")
            and event.marker_recorded_event_attributes.marker_name == "core_patch"
        ]
    )


@pytest.mark.parametrize("probe", [LeanProbe, BatchedProbe])
async def test_a_fresh_history_replays(
    time_env: WorkflowEnvironment, database: Database, probe: type[_Probe]
) -> None:
    outcomes = [
        await run_probe(time_env, database, probe),
        await run_probe(time_env, database, probe, exit_while_waiting),
    ]
    histories = [await outcome.handle.fetch_history() for outcome in outcomes]

    replayer = Replayer(workflows=PROBES)
    results = [await replayer.replay_workflow(history) for history in histories]

    # replay_workflow raises on nondeterminism; no failure held in the results either.
    assert [result.replay_failure for result in results] == [None, None]
    assert len({outcome.handle.id for outcome in outcomes}) == 2
