"""`record_lifecycle_batch` against PostgreSQL and SQLite: one transaction, safe to repeat."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.lifecycle import LifecycleRecorder
from persistence import Database, Enrollment, EnrollmentStep
from workflows.contracts import LifecycleBatch, LifecycleBatchAck, LifecycleRecord

run = ActivityEnvironment().run
ENTERED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def record(run_id: str, kind: str, minute: int = 0, **fields: Any) -> LifecycleRecord:
    defaults: dict[str, Any] = {
        "workflow_id": f"journey:abandoned_cart:c-42:{run_id}",
        "run_id": run_id,
        "journey": "abandoned_cart",
        "version": 2,
        "contact_id": "c-42",
        "key": "cart-7",
        "kind": kind,
        "at": ENTERED_AT + timedelta(minutes=minute),
        "trigger_event_id": "evt-1",
    }
    return LifecycleRecord(**{**defaults, **fields})


def step(run_id: str, name: str, minute: int, outcome: str = "sent") -> LifecycleRecord:
    return record(run_id, "step", minute, step=name, step_kind="send", outcome=outcome)


@dataclass(frozen=True)
class Rows:
    """What the records left in the database, in comparable form."""

    enrollment: tuple[Any, ...] | None
    steps: list[tuple[Any, ...]]


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive UTC datetimes.
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


async def rows(database: Database, run_id: str) -> Rows:
    async with database.session() as session:
        row = await session.get(Enrollment, run_id)
        found = await session.exec(
            select(EnrollmentStep)
            .where(col(EnrollmentStep.run_id) == run_id)
            .order_by(col(EnrollmentStep.id))
        )
        steps = [(s.step, s.kind, s.outcome, aware(s.at)) for s in found.all()]
    enrollment = None
    if row is not None:
        enrollment = (
            row.status,
            row.current_step,
            row.ended_by,
            aware(row.entered_at),
            aware(row.ended_at),
            row.key,
            row.trigger_event_id,
        )
    return Rows(enrollment, steps)


async def test_a_batch_writes_every_record_in_order(any_database: Database) -> None:
    recorder = LifecycleRecorder(any_database)
    run_id = str(uuid.uuid4())
    batch = LifecycleBatch(
        records=[
            record(run_id, "entered"),
            step(run_id, "first_reminder", 60),
            step(run_id, "pause", 120, outcome="waited"),
            record(run_id, "ended", 121, status="converted", outcome="event:order_placed"),
        ]
    )

    ack = await run(recorder.record_lifecycle_batch, batch)

    assert ack == LifecycleBatchAck(recorded=4)
    assert await rows(any_database, run_id) == Rows(
        enrollment=(
            "converted",
            "pause",
            "event:order_placed",
            ENTERED_AT,
            ENTERED_AT + timedelta(minutes=121),
            "cart-7",
            "evt-1",
        ),
        steps=[
            ("first_reminder", "send", "sent", ENTERED_AT + timedelta(minutes=60)),
            ("pause", "send", "waited", ENTERED_AT + timedelta(minutes=120)),
        ],
    )


async def test_repeating_batches_changes_nothing(any_database: Database) -> None:
    # A local activity may run again after a worker restart, and a flush cancelled by a goal
    # is written again by the ending's flush: every repeat, in any order, is a no-op.
    recorder = LifecycleRecorder(any_database)
    run_id = str(uuid.uuid4())
    entered = LifecycleBatch(records=[record(run_id, "entered")])
    middle = LifecycleBatch(records=[step(run_id, "first", 1), step(run_id, "second", 2)])
    last = LifecycleBatch(
        records=[
            step(run_id, "third", 3),
            record(run_id, "ended", 4, status="exited", outcome="event:unsubscribed", step="x"),
        ]
    )
    for batch in (entered, middle, last):
        await run(recorder.record_lifecycle_batch, batch)
    before = await rows(any_database, run_id)

    again = [await run(recorder.record_lifecycle_batch, b) for b in (last, middle, entered)]
    # A stale repeat of the steps alone must not move the current step back either.
    stale = await run(recorder.record_lifecycle_batch, middle)

    assert again == [LifecycleBatchAck(recorded=0)] * 3
    assert stale == LifecycleBatchAck(recorded=0)
    assert await rows(any_database, run_id) == before
    assert before.enrollment is not None and before.enrollment[:3] == (
        "exited",
        "x",
        "event:unsubscribed",
    )
    assert [s[0] for s in before.steps] == ["first", "second", "third"]


async def test_a_batch_overlapping_what_was_written_adds_only_the_rest(
    any_database: Database,
) -> None:
    recorder = LifecycleRecorder(any_database)
    run_id = str(uuid.uuid4())
    await run(recorder.record_lifecycle_batch, LifecycleBatch([record(run_id, "entered")]))
    await run(recorder.record_lifecycle_batch, LifecycleBatch([step(run_id, "first", 1)]))

    ack = await run(
        recorder.record_lifecycle_batch,
        LifecycleBatch([step(run_id, "first", 1), step(run_id, "second", 2)]),
    )

    assert ack == LifecycleBatchAck(recorded=1)
    written = await rows(any_database, run_id)
    assert written.enrollment is not None and written.enrollment[1] == "second"
    assert [s[0] for s in written.steps] == ["first", "second"]


async def test_the_old_per_record_activity_and_the_batch_agree(any_database: Database) -> None:
    # Runs recorded before the patch keep calling `record_lifecycle`: same rows either way.
    recorder = LifecycleRecorder(any_database)
    one, batched = str(uuid.uuid4()), str(uuid.uuid4())

    def facts(run_id: str) -> list[LifecycleRecord]:
        return [
            record(run_id, "entered"),
            step(run_id, "first", 1),
            record(run_id, "ended", 2, status="completed"),
        ]

    for fact in facts(one):
        await run(recorder.record_lifecycle, fact)
    await run(recorder.record_lifecycle_batch, LifecycleBatch(facts(batched)))

    assert await rows(any_database, one) == await rows(any_database, batched)


async def test_a_batch_is_one_transaction(any_database: Database) -> None:
    # A record the database refuses (a journey name over the column's 200 characters; only
    # PostgreSQL checks lengths) fails the whole batch: nothing of it is left behind, so the
    # retry writes it all or nothing.
    if any_database.dialect != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    recorder = LifecycleRecorder(any_database)
    run_id = str(uuid.uuid4())
    batch = LifecycleBatch(
        [record(run_id, "entered"), step(run_id, "first", 1, outcome="sent"), step(run_id, "x", 2)]
    )
    batch.records[2].journey = "j" * 300

    with pytest.raises(Exception, match="too long"):
        await run(recorder.record_lifecycle_batch, batch)

    assert await rows(any_database, run_id) == Rows(enrollment=None, steps=[])
