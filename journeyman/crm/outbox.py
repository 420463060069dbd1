"""The CRM outbox: remembering, in the same transaction as the change, that a contact's pushed
fields changed and must reach the CRM.

Writing the mark with the change (not calling the CRM from the request or the activity that
changed it) is what makes a CRM outage delay the sync without losing anything: the row waits
until a push succeeds. One row per contact coalesces many changes into one call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from persistence import CrmFieldState, CrmOutbox


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
    insert = _insert(dialect)
    outbox = insert(CrmOutbox).values(
        contact_id=contact_id,
        status="pending",
        first_changed_at=at,
        changed_at=at,
        attempts=0,
    )
    # A pending row keeps its first_changed_at (how long the contact has waited); a failed
    # one is retried with the new values, as a fresh change.
    await session.exec(
        outbox.on_conflict_do_update(
            index_elements=["contact_id"],
            set_={"changed_at": at, "status": "pending"},
        )
    )
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


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")
