"""The CRM outbox: remembering, in the same transaction as the change, that a contact's pushed
fields changed and must reach the CRM.

Writing the mark with the change (not calling the CRM from the request or the activity that
changed it) is what makes a CRM outage delay the sync without losing anything: the row waits
until a push succeeds. One row per contact coalesces many changes into one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from persistence import CrmFieldState, CrmOutbox
from persistence.models import as_utc

PENDING = "pending"
FAILED = "failed"
# A contact that keeps changing is pushed anyway once its first unsent change is this many
# windows old: quiet-for-a-window batching must not starve it.
STARVATION_WINDOWS = 6
ERROR_MAX = 2000


async def mark_changed(
    session: AsyncSession,
    dialect: str,
    *,
    contact_id: str,
    fields: Iterable[str],
    at: datetime,
) -> None:
    """Record that Journeyman changed `fields` (local names, e.g. "score", "lifecycle_stage",
    "attributes.company") of the contact at `at`, in the caller's transaction.

    The caller commits. Fields the CRM mapping does not push are harmless: the push reads the
    mapping and sends only what it maps.
    """
    names = sorted(set(fields))
    if not names:
        return
    await _mark_outbox(session, dialect, contact_id, at)
    insert = dialect_insert(dialect)
    for name in names:
        state = insert(CrmFieldState).values(
            contact_id=contact_id, field=name, updated_at=at, source="local"
        )
        await session.exec(
            state.on_conflict_do_update(
                index_elements=["contact_id", "field"],
                set_={"updated_at": at, "source": "local"},
            )
        )


async def _mark_outbox(session: AsyncSession, dialect: str, contact_id: str, at: datetime) -> None:
    """Create the contact's row, or move its `changed_at` forward.

    A push settles a row only if `changed_at` is still what it read, so every mark must move
    it, even one stamped with the same or an older time than the last (an event's own
    timestamp, say): it moves by a microsecond at least, and never back.
    """
    failed = col(CrmOutbox.status) == FAILED
    # The update takes the row (and SQLite's write lock) before its changed_at is read back.
    taken = await session.exec(
        update(CrmOutbox)
        .where(col(CrmOutbox.contact_id) == contact_id)
        .values(
            status=PENDING,
            # A failed row is retried with the new values, as a fresh change; a pending one
            # keeps its first_changed_at (how long the contact has waited).
            first_changed_at=case((failed, at), else_=col(CrmOutbox.first_changed_at)),
            attempts=case((failed, 0), else_=col(CrmOutbox.attempts)),
            last_error=case((failed, None), else_=col(CrmOutbox.last_error)),
        )
        .returning(col(CrmOutbox.changed_at))
    )
    previous = taken.scalar_one_or_none()
    if previous is not None:
        moved = max(as_utc(at), as_utc(previous) + timedelta(microseconds=1))
        await session.exec(
            update(CrmOutbox)
            .where(col(CrmOutbox.contact_id) == contact_id)
            .values(changed_at=moved)
        )
        return
    # No row yet. Two first marks racing both land here; the loser's upsert sets changed_at.
    insert = dialect_insert(dialect)
    await session.exec(
        insert(CrmOutbox)
        .values(
            contact_id=contact_id,
            status=PENDING,
            first_changed_at=at,
            changed_at=at,
            attempts=0,
        )
        .on_conflict_do_update(
            index_elements=["contact_id"], set_={"changed_at": at, "status": PENDING}
        )
    )


def dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _due(now: datetime, window: timedelta) -> Any:
    return (col(CrmOutbox.status) == PENDING) & or_(
        col(CrmOutbox.changed_at) <= now - window,
        col(CrmOutbox.first_changed_at) <= now - window * STARVATION_WINDOWS,
    )


async def due_rows(
    session: AsyncSession, *, now: datetime, window: timedelta, limit: int
) -> Sequence[CrmOutbox]:
    """Pending rows due at `now`: quiet for a window, or waiting for six; oldest first."""
    statement = (
        select(CrmOutbox)
        .where(_due(now, window))
        .order_by(col(CrmOutbox.first_changed_at), col(CrmOutbox.contact_id))
        .limit(limit)
    )
    return (await session.exec(statement)).all()


async def next_due_at(session: AsyncSession, *, window: timedelta) -> datetime | None:
    """When the earliest pending row becomes due (None when nothing is pending)."""
    statement = select(func.min(CrmOutbox.changed_at), func.min(CrmOutbox.first_changed_at)).where(
        col(CrmOutbox.status) == PENDING
    )
    quiet, first = (await session.exec(statement)).one()
    if quiet is None or first is None:
        return None
    return min(as_utc(quiet) + window, as_utc(first) + window * STARVATION_WINDOWS)


async def settle_pushed(session: AsyncSession, *, contact_id: str, changed_at: datetime) -> bool:
    """Delete the row if no change landed since the push read it; False if one did (the row
    stays pending and the newer values go in a later push)."""
    result = await session.exec(
        delete(CrmOutbox).where(
            col(CrmOutbox.contact_id) == contact_id,
            col(CrmOutbox.changed_at) == changed_at,
            col(CrmOutbox.status) == PENDING,
        )
    )
    return bool(result.rowcount)


async def record_error(
    session: AsyncSession,
    *,
    contact_id: str,
    changed_at: datetime,
    error: str,
    final: bool,
) -> None:
    """Note a failed attempt on the row. `final` (the CRM refused the values) parks it as
    failed until the contact changes again; otherwise it stays pending for the retry.

    A row that changed since the push read it stays pending either way: the new values may be
    the fix.
    """
    values: dict[str, Any] = {
        "attempts": col(CrmOutbox.attempts) + 1,
        "last_error": error[:ERROR_MAX],
    }
    if final:
        values["status"] = FAILED
    await session.exec(
        update(CrmOutbox)
        .where(
            col(CrmOutbox.contact_id) == contact_id,
            col(CrmOutbox.changed_at) == changed_at,
            col(CrmOutbox.status) == PENDING,
        )
        .values(**values)
    )
