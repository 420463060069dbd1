"""The lifecycle activities: an enrollment's entered, step and ended facts, for stats and routing.

Journeys run these as local activities (`workflows/runtime.py`). Runs started before the
`batched-lifecycle` patch record each fact on its own (`record_lifecycle`); newer runs buffer
them and write several at once (`record_lifecycle_batch`). Both stay registered: a run replays
with the activity its history names.

Whatever the activity, the records of every enrollment of this worker that are being recorded
at the same moment are written together (`GroupCommit`): one transaction and a statement per
kind of record, however many enrollments are in it. At a wake-up peak, when a thousand
enrollments end within seconds, that is a few dozen transactions instead of a thousand.

A local activity may run again after a worker restart, so every write is safe to repeat:
"entered" inserts the enrollment row once, a step row is unique per (run, step) and moves
the enrollment's current step only when it is new (a stale repeat cannot move it back), and
"ended" applies only to an enrollment not ended yet.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, case, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from temporalio import activity

from persistence import Database, Enrollment, EnrollmentStep
from persistence.group_commit import GroupCommit
from workflows.contracts import (
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    LifecycleAck,
    LifecycleBatch,
    LifecycleBatchAck,
    LifecycleRecord,
    SendRequest,
    SendResult,
)

# Reasons and outcomes are cut to the column's width.
REASON_MAX = 200
UNNAMED = "(unnamed)"
# Rows per statement: far below PostgreSQL's 65,535 and SQLite's 32,766 bound parameters.
CHUNK = 500
_ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[attr-defined]
_STEPS: Table = EnrollmentStep.__table__  # type: ignore[attr-defined]


# One job is one activity's records; the answer is how many of them were new.
LifecycleWriter = GroupCommit[Sequence[LifecycleRecord], int]


def lifecycle_writer(database: Database) -> LifecycleWriter:
    """This process's one writer of lifecycle records for the database, shared by the
    lifecycle activities and the sends that carry records."""
    writer = database.shared.get("lifecycle_writer")
    if not isinstance(writer, GroupCommit):
        writer = database.shared["lifecycle_writer"] = GroupCommit(
            functools.partial(_write_jobs, database)
        )
    return writer


async def send_with_records(
    write: Callable[[Sequence[LifecycleRecord]], Awaitable[object]],
    request: SendRequest,
    send: Callable[[], Awaitable[SendResult]],
) -> SendResult:
    """A send activity's body, with the lifecycle records its journey hands it.

    `write` writes records (`lifecycle_writer(database).submit` in a worker). The records
    made since the journey's last write (a finished wait, its "entered") are written with the
    step's own record once the send has an outcome (a deferred send has none yet): one write
    per send. An "entered" among them is written first, whatever the send then does, since
    routing finds running enrollments by that row and a provider outage may hold the send
    for hours. The step's record is dated when Temporal scheduled the attempt that has the
    outcome: the journey's clock, as its other records (the worker's clock is not, under a
    time-skipping test server). The result says what was written; the journey keeps
    buffering the rest (an attempt that raises writes nothing after the "entered"). Writes
    are safe to repeat, as a retried attempt does.
    """
    pending = list(request.lifecycle)
    if any(record.kind == "entered" for record in pending):
        await write(pending)
        pending = []
    result = await send()
    recorded = False
    if request.record_as is not None and result.status != "deferred":
        at = activity.info().current_attempt_scheduled_time
        pending.append(dataclasses.replace(request.record_as, outcome=result.outcome, at=at))
        recorded = True
    if pending:
        await write(pending)
    return dataclasses.replace(
        result, lifecycle_written=bool(request.lifecycle), step_recorded=recorded
    )


class LifecycleRecorder:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._group = lifecycle_writer(database)

    def activities(self) -> list[Any]:
        """Both activities, for a worker's activity list."""
        return [self.record_lifecycle, self.record_lifecycle_batch]

    @activity.defn(name=RECORD_LIFECYCLE_BATCH)
    async def record_lifecycle_batch(self, batch: LifecycleBatch) -> LifecycleBatchAck:
        """Write the records in order, in one transaction; `recorded` counts the new ones."""
        return LifecycleBatchAck(recorded=await self._group.submit(batch.records))

    @activity.defn(name=RECORD_LIFECYCLE)
    async def record_lifecycle(self, record: LifecycleRecord) -> LifecycleAck:
        """Write one lifecycle fact; `recorded=False` means an earlier attempt already did.
        (Runs recorded before the batched-lifecycle patch call this one per fact.)"""
        return LifecycleAck(recorded=await self._group.submit([record]) == 1)


async def _write_jobs(database: Database, jobs: list[Sequence[LifecycleRecord]]) -> list[int]:
    records = [record for job in jobs for record in job]
    async with database.writer_transaction() as connection:
        new = await write_records(connection, database.dialect, records)
    counts: list[int] = []
    position = 0
    for job in jobs:
        counts.append(sum(new[position : position + len(job)]))
        position += len(job)
    return counts


async def write_records(
    connection: AsyncConnection, dialect: str, records: Sequence[LifecycleRecord]
) -> list[bool]:
    """Write the records in the caller's transaction; which of them were new, in order.

    Records of one enrollment come in the order it made them (entered, steps, ended), so
    applying every "entered" first, then every step, then every "ended" keeps each
    enrollment's order. Conflicts are skipped with ON CONFLICT DO NOTHING rather than caught,
    since an IntegrityError would end the whole transaction.
    """
    first = _first_of_each(records)
    entered, steps, ended = (
        [r for r, is_first in zip(records, first, strict=True) if is_first and r.kind == kind]
        for kind in ("entered", "step", "ended")
    )
    new_runs = await _insert_new(
        connection, dialect, _ENROLLMENTS, [_enrollment(r) for r in entered]
    )
    new_steps = await _insert_new(connection, dialect, _STEPS, [_step_row(r) for r in steps])
    # Only a new step row moves the current step, to the enrollment's latest new step.
    latest = {r.run_id: r.step or UNNAMED for r in steps if _key(r) in new_steps}
    for chunk in _chunks(list(latest.items())):
        await connection.execute(
            update(_ENROLLMENTS)
            .where(_ENROLLMENTS.c.run_id.in_([run for run, _ in chunk]))
            .values(current_step=_by_run(dict(chunk), "current_step"))
        )
    ended_runs = await _end(connection, ended)
    new = {"entered": new_runs, "step": new_steps, "ended": ended_runs}
    return [
        is_first and _key(record) in new[record.kind]
        for record, is_first in zip(records, first, strict=True)
    ]


def _key(record: LifecycleRecord) -> Any:
    """What makes a record unique: its run, and for a step the step's name."""
    return (record.run_id, record.step or UNNAMED) if record.kind == "step" else record.run_id


def _first_of_each(records: Sequence[LifecycleRecord]) -> list[bool]:
    """For each record, whether it is the first of its kind and key in the group (a repeat
    in the same group is written once and is not new)."""
    seen: set[tuple[str, Any]] = set()
    first: list[bool] = []
    for record in records:
        key = (record.kind, _key(record))
        first.append(key not in seen)
        seen.add(key)
    return first


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def _insert_new(
    connection: AsyncConnection, dialect: str, table: Table, rows: list[dict[str, Any]]
) -> set[Any]:
    """Insert the rows that are not there yet; the keys of the inserted ones (RETURNING:
    psycopg's rowcount is -1 for this statement)."""
    keys = [table.c.run_id] if table is _ENROLLMENTS else [table.c.run_id, table.c.step]
    inserted: set[Any] = set()
    for chunk in _chunks(rows):
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        result = await connection.execute(
            insert.values(chunk).on_conflict_do_nothing().returning(*keys)
        )
        inserted.update(row[0] if len(keys) == 1 else (row[0], row[1]) for row in result)
    return inserted


async def _end(connection: AsyncConnection, records: list[LifecycleRecord]) -> set[str]:
    """Apply the endings to the enrollments not ended yet; the run ids they applied to."""
    applied: set[str] = set()
    for chunk in _chunks(records):
        runs = [r.run_id for r in chunk]
        # The step it was in when a goal or exit ended it; else the last step done.
        in_step = {r.run_id: r.step for r in chunk if r.step}
        values: dict[str, ColumnElement[Any]] = {
            "status": _by_run({r.run_id: r.status for r in chunk}, "status"),
            "ended_by": _by_run(
                {r.run_id: (r.outcome or "")[:REASON_MAX] or None for r in chunk}, "ended_by"
            ),
            "ended_at": _by_run({r.run_id: r.at for r in chunk}, "ended_at"),
        }
        if in_step:
            values["current_step"] = _by_run(in_step, "current_step")
        result = await connection.execute(
            update(_ENROLLMENTS)
            .where(_ENROLLMENTS.c.run_id.in_(runs), _ENROLLMENTS.c.ended_at.is_(None))
            .values(**values)
            .returning(_ENROLLMENTS.c.run_id)
        )
        applied.update(row[0] for row in result)
    return applied


def _by_run(values: dict[str, Any], column: str) -> ColumnElement[Any]:
    """`CASE run_id WHEN ... THEN ... ELSE <column> END`: a value per enrollment in one
    statement, each bound with the column's own type (SQLite stores datetimes as text)."""
    target = _ENROLLMENTS.c[column]
    return case(
        {run: literal(value, type_=target.type) for run, value in values.items()},
        value=_ENROLLMENTS.c.run_id,
        else_=target,
    )


def _enrollment(record: LifecycleRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "workflow_id": record.workflow_id,
        "journey": record.journey,
        "version": record.version,
        "contact_id": record.contact_id,
        "key": record.key,
        "status": record.status,
        "trigger_event_id": record.trigger_event_id,
        "entered_at": record.at,
    }


def _step_row(record: LifecycleRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "journey": record.journey,
        "step": record.step or UNNAMED,
        "kind": record.step_kind or "step",
        "outcome": (record.outcome or "")[:REASON_MAX],
        "at": record.at,
    }
