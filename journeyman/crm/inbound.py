"""CRM changes coming in: apply them to contacts under the "newer timestamp wins" rule.

Each change is one transaction: claim its id in `crm_inbound_events` (a redelivery finds it
taken: `duplicate`), lock and update the contact, stamp the field's `crm_field_state` with the
change's time and `source=crm`, and, for a lifecycle stage change, store the
`lifecycle.<stage>` event. Routing that event to journeys comes after the commit, like
`POST /v1/events` does: the stored event is never lost, and a redelivered change that finds
its event stored but not routed routes it again (journeys de-duplicate by event id).

Outcomes per change:
- `applied`: the contact now holds the CRM's value;
- `older_than_local`: Journeyman changed the field after the CRM did (the push will send it);
- `stale`: the CRM already told us something newer about the field (out-of-order delivery);
- `duplicate`: this change id was applied before;
- `unknown_contact`: no contact with that id or CRM id;
- `unmapped_field`: the mapping names no such CRM property;
- `not_pulled`: the field is mapped `push` only: Journeyman owns it.

Only `applied`, `older_than_local` and `stale` are remembered as seen: the others may become
applicable later (the contact gets created, the mapping changes), and a redelivery gets
another look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.crm.base import InboundChange
from journeyman.crm.mapping import LIFECYCLE_STAGE, FieldMapping
from journeyman.crm.outbox import dialect_insert
from journeyman.crm.values import apply_pulled
from persistence import Contact, CrmFieldState, CrmInboundEvent, Database, EventRecord
from persistence.models import as_utc, utcnow
from workflows.contracts import Event

Outcome = Literal[
    "applied",
    "older_than_local",
    "stale",
    "duplicate",
    "unknown_contact",
    "unmapped_field",
    "not_pulled",
]
LIFECYCLE_EVENT_PREFIX = "lifecycle."
EVENT_ID_MAX = 300


@dataclass
class ChangeOutcome:
    event_id: str
    field: str
    outcome: Outcome
    contact_id: str | None = None
    # The `lifecycle.<stage>` event this change stored (to be routed), if any.
    event: Event | None = None


def lifecycle_event_id(change_id: str) -> str:
    # The events table keeps ids of up to 200 characters.
    return f"crm:{change_id}"[:200]


def change_key(change: InboundChange) -> str:
    """The idempotency key of one field of one CRM event (a generic event changes several)."""
    return f"{change.event_id}|{change.remote_field}"[:EVENT_ID_MAX]


class InboundApplier:
    def __init__(self, *, database: Database, mapping: FieldMapping) -> None:
        self.database = database
        self.mapping = mapping

    async def apply(self, changes: Sequence[InboundChange]) -> list[ChangeOutcome]:
        # In time order, so a batch holding two changes of one field ends with the newer.
        ordered = sorted(changes, key=lambda change: as_utc(change.occurred_at))
        outcomes = {id(change): await self._apply_one(change) for change in ordered}
        return [outcomes[id(change)] for change in changes]

    async def _apply_one(self, change: InboundChange) -> ChangeOutcome:
        entry = self.mapping.by_remote(change.remote_field)
        if entry is None:
            return ChangeOutcome(change.event_id, change.remote_field, "unmapped_field")
        if not entry.pulls:
            return ChangeOutcome(change.event_id, entry.local, "not_pulled")
        key = change_key(change)
        async with self.database.session() as session:
            contact = await self._find_contact(session, change)
            if contact is None:
                return ChangeOutcome(change.event_id, entry.local, "unknown_contact")
            outcome = ChangeOutcome(change.event_id, entry.local, "applied", contact.contact_id)
            seen = CrmInboundEvent(id=key, contact_id=contact.contact_id, applied={})
            session.add(seen)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return await self._duplicate(outcome, change)
            state = await session.get(CrmFieldState, (contact.contact_id, entry.local))
            occurred_at = as_utc(change.occurred_at)
            if state is not None and as_utc(state.updated_at) >= occurred_at:
                outcome.outcome = "older_than_local" if state.source == "local" else "stale"
                await session.commit()
                return outcome
            previous = apply_pulled(contact, entry, change.value)
            seen.applied = {entry.local: change.value}
            contact.updated_at = utcnow()
            await _stamp(
                session, self.database.dialect, contact.contact_id, entry.local, occurred_at
            )
            if entry.local == LIFECYCLE_STAGE and contact.lifecycle_stage not in (None, previous):
                outcome.event = _lifecycle_event(change, contact, previous)
                session.add(_record(outcome.event))
            await session.commit()
        return outcome

    async def _find_contact(self, session: AsyncSession, change: InboundChange) -> Contact | None:
        """The contact, locked for this transaction (PostgreSQL) against a concurrent local
        change of the same field."""
        statement = select(Contact).with_for_update()
        if change.contact_id:
            statement = statement.where(col(Contact.contact_id) == change.contact_id)
        elif change.crm_id:
            statement = statement.where(col(Contact.crm_id) == change.crm_id)
        else:
            return None
        return (await session.exec(statement.limit(1))).first()

    async def _duplicate(self, outcome: ChangeOutcome, change: InboundChange) -> ChangeOutcome:
        """A redelivery: applied before. If it stored a lifecycle event that was never routed
        (the earlier request died between commit and routing), hand it out to route again."""
        outcome.outcome = "duplicate"
        async with self.database.session() as session:
            record = await session.get(EventRecord, lifecycle_event_id(change.event_id))
        if record is not None and record.routing is None:
            outcome.event = record.as_event()
        return outcome


async def _stamp(
    session: AsyncSession, dialect: str, contact_id: str, field: str, at: datetime
) -> None:
    insert = dialect_insert(dialect)
    statement = insert(CrmFieldState).values(
        contact_id=contact_id, field=field, updated_at=at, source="crm"
    )
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["contact_id", "field"], set_={"updated_at": at, "source": "crm"}
        )
    )


def _lifecycle_event(change: InboundChange, contact: Contact, previous: Any) -> Event:
    stage = str(contact.lifecycle_stage)
    return Event(
        id=lifecycle_event_id(change.event_id),
        contact_id=contact.contact_id,
        name=f"{LIFECYCLE_EVENT_PREFIX}{stage}",
        properties={"stage": stage, "previous": previous, "source": "crm"},
        occurred_at=as_utc(change.occurred_at),
    )


def _record(event: Event) -> EventRecord:
    return EventRecord(
        id=event.id,
        contact_id=event.contact_id,
        name=event.name,
        properties=event.properties,
        occurred_at=event.occurred_at or utcnow(),
        received_at=utcnow(),
    )
