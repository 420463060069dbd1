"""The lifecycle activities: an enrollment's entered, step and ended facts, for stats and routing.

Journeys run these as local activities (`workflows/runtime.py`). Runs started before the
`batched-lifecycle` patch record each fact on its own (`record_lifecycle`); newer runs buffer
them and write several at once (`record_lifecycle_batch`), in one transaction. Both stay
registered: a run replays with the activity its history names.

A local activity may run again after a worker restart, so every write is safe to repeat:
"entered" inserts the enrollment row once, a step row is unique per (run, step) and moves
the enrollment's current step only when it is new (a stale repeat cannot move it back), and
"ended" applies only to an enrollment not ended yet.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from persistence import Database, Enrollment, EnrollmentStep
from workflows.contracts import (
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    LifecycleAck,
    LifecycleBatch,
    LifecycleBatchAck,
    LifecycleRecord,
)

# Reasons and outcomes are cut to the column's width.
REASON_MAX = 200
UNNAMED = "(unnamed)"
_ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[attr-defined]
_STEPS: Table = EnrollmentStep.__table__  # type: ignore[attr-defined]
# The column RETURNING reads to tell an insert from a conflict.
_KEYS = {_ENROLLMENTS.name: "run_id", _STEPS.name: "id"}


class LifecycleRecorder:
    def __init__(self, database: Database) -> None:
        self.database = database

    def activities(self) -> list[Any]:
        """Both activities, for a worker's activity list."""
        return [self.record_lifecycle, self.record_lifecycle_batch]

    @activity.defn(name=RECORD_LIFECYCLE_BATCH)
    async def record_lifecycle_batch(self, batch: LifecycleBatch) -> LifecycleBatchAck:
        """Write the records in order, in one transaction; `recorded` counts the new ones."""
        return LifecycleBatchAck(recorded=await self._write_all(batch.records))

    @activity.defn(name=RECORD_LIFECYCLE)
    async def record_lifecycle(self, record: LifecycleRecord) -> LifecycleAck:
        """Write one lifecycle fact; `recorded=False` means an earlier attempt already did.
        (Runs recorded before the batched-lifecycle patch call this one per fact.)"""
        return LifecycleAck(recorded=await self._write_all([record]) == 1)

    async def _write_all(self, records: list[LifecycleRecord]) -> int:
        dialect = self.database.dialect
        async with self.database.session() as session:
            written = [await _write(session, dialect, record) for record in records]
            await session.commit()
        return sum(written)


async def _write(session: AsyncSession, dialect: str, record: LifecycleRecord) -> bool:
    """One record inside the transaction. Conflicts are skipped with ON CONFLICT DO NOTHING
    rather than caught, since an IntegrityError would end the whole transaction."""
    if record.kind == "entered":
        return await _insert_if_absent(session, dialect, _ENROLLMENTS, _enrollment(record))
    if record.kind == "step":
        if not await _insert_if_absent(session, dialect, _STEPS, _step_row(record)):
            return False
        # Only a new step row moves the current step: a stale repeat cannot move it back.
        await session.exec(
            update(Enrollment)
            .where(col(Enrollment.run_id) == record.run_id)
            .values(current_step=record.step or UNNAMED)
        )
        return True
    return await _end(session, record)


async def _insert_if_absent(
    session: AsyncSession, dialect: str, table: Table, values: dict[str, Any]
) -> bool:
    # Plain values into the table, not model instances: building a SQLModel instance costs
    # more CPU than the insert (profiled). RETURNING says whether it inserted: psycopg's
    # rowcount is -1 for this statement.
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    statement = (
        insert.values(**values).on_conflict_do_nothing().returning(table.c[_KEYS[table.name]])
    )
    result = await session.exec(statement)
    return result.first() is not None


async def _end(session: AsyncSession, record: LifecycleRecord) -> bool:
    result = await session.exec(
        update(Enrollment)
        .where(col(Enrollment.run_id) == record.run_id, col(Enrollment.ended_at).is_(None))
        .values(
            status=record.status,
            ended_by=(record.outcome or "")[:REASON_MAX] or None,
            ended_at=record.at,
            # The step it was in when a goal or exit ended it; else the last step done.
            **({"current_step": record.step} if record.step else {}),
        )
    )
    return bool(result.rowcount == 1)


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
