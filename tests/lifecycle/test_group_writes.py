"""Lifecycle records of many enrollments recorded at the same moment are written together: one
transaction for the group, each activity still told how many of its own records were new, and
one enrollment's bad record fails only that enrollment's activity."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from temporalio.testing import ActivityEnvironment

from activities.lifecycle import LifecycleRecorder
from persistence import Database
from workflows.contracts import LifecycleBatch, LifecycleBatchAck, LifecycleRecord

from .test_batch_activity import Rows, record, rows, step

run = ActivityEnvironment().run


@contextmanager
def counted_commits(database: Database) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_connection: object) -> None:
        commits.append(1)

    engine = (database.writer_engine or database.engine).sync_engine
    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


def journey_of(run_id: str) -> list[LifecycleRecord]:
    return [
        record(run_id, "entered"),
        step(run_id, "first", 1),
        step(run_id, "pause", 2, outcome="waited"),
        record(run_id, "ended", 3, status="completed"),
    ]


async def test_concurrent_batches_share_transactions_and_each_gets_its_own_count(
    any_database: Database,
) -> None:
    recorder = LifecycleRecorder(any_database)
    runs = [str(uuid.uuid4()) for _ in range(40)]
    # Half of them were entered already: their "entered" is a repeat, not new.
    for run_id in runs[:20]:
        await run(recorder.record_lifecycle_batch, LifecycleBatch([record(run_id, "entered")]))

    with counted_commits(any_database) as commits:
        acks = await asyncio.gather(
            *(run(recorder.record_lifecycle_batch, LifecycleBatch(journey_of(r))) for r in runs)
        )

    assert acks == [LifecycleBatchAck(recorded=3)] * 20 + [LifecycleBatchAck(recorded=4)] * 20
    # Not a transaction per activity: those that come while a group is written go together
    # into the next one (here they all arrive before the first group starts).
    assert 1 <= len(commits) <= 2
    for run_id in runs:
        written = await rows(any_database, run_id)
        assert written.enrollment is not None
        assert written.enrollment[:2] == ("completed", "pause")
        assert [s[:3] for s in written.steps] == [
            ("first", "send", "sent"),
            ("pause", "send", "waited"),
        ]


async def test_a_repeat_inside_one_group_is_written_once(any_database: Database) -> None:
    # The same records from a retried activity and from the first attempt, at one moment.
    recorder = LifecycleRecorder(any_database)
    run_id = str(uuid.uuid4())

    acks = await asyncio.gather(
        run(recorder.record_lifecycle_batch, LifecycleBatch(journey_of(run_id))),
        run(recorder.record_lifecycle_batch, LifecycleBatch(journey_of(run_id))),
        run(recorder.record_lifecycle_batch, LifecycleBatch(journey_of(run_id))),
    )

    assert sorted(ack.recorded for ack in acks) == [0, 0, 4]
    written = await rows(any_database, run_id)
    assert [s[0] for s in written.steps] == ["first", "pause"]


async def test_a_bad_record_fails_only_its_own_activity(any_database: Database) -> None:
    recorder = LifecycleRecorder(any_database)
    good = [str(uuid.uuid4()) for _ in range(5)]
    bad = str(uuid.uuid4())
    broken = journey_of(bad)
    broken[0].journey = None  # type: ignore[assignment]  # NOT NULL on both databases

    outcomes = await asyncio.gather(
        *(run(recorder.record_lifecycle_batch, LifecycleBatch(journey_of(r))) for r in good),
        run(recorder.record_lifecycle_batch, LifecycleBatch(broken)),
        return_exceptions=True,
    )

    assert outcomes[:5] == [LifecycleBatchAck(recorded=4)] * 5
    assert isinstance(outcomes[5], Exception)
    assert await rows(any_database, bad) == Rows(enrollment=None, steps=[])
    for run_id in good:
        assert (await rows(any_database, run_id)).enrollment is not None
