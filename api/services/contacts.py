"""Contacts: create, update and read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from sqlalchemy import Table, bindparam, or_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from api.schemas.contacts import ContactUpsert
from api.services.sql import dialect_insert, insert_if_absent
from journeyman.crm.mapping import FieldMapping
from journeyman.crm.outbox import mark_changed
from journeyman.crm.values import changed_fields, local_fields
from journeyman.dormancy import wakes
from persistence import Contact
from persistence.models import utcnow


class ContactNotFoundError(LookupError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"unknown contact '{contact_id}'")
        self.contact_id = contact_id


async def upsert_contact(
    *,
    session: AsyncSession,
    dialect: str,
    contact_id: str,
    contact_in: ContactUpsert,
    crm_mapping: FieldMapping | None = None,
    after_commit: Callable[[str], Awaitable[object]] | None = None,
) -> tuple[Contact, bool]:
    """Create the contact or update the fields the request names; True when created.

    A new contact starts with the consent the request gives. Consent of an existing contact is
    not touched here: changing it records events (`ConsentService.change`). Fields the CRM
    mapping pushes that actually changed are marked for the CRM sync in the same transaction.
    """
    existing = await session.get(Contact, contact_id)
    before = local_fields(existing) if existing is not None else {}
    fields = contact_in.model_dump(exclude_unset=True, exclude={"subscriptions"})
    consent = {
        f"{channel}_consent": subscribed
        for channel, subscribed in (
            contact_in.subscriptions.wanted() if contact_in.subscriptions else {}
        ).items()
    }
    now = utcnow()
    is_new = await insert_if_absent(
        session,
        dialect,
        Contact,
        key=col(Contact.contact_id),
        values={"attributes": {}, **fields, **consent}
        | {"contact_id": contact_id, "created_at": now, "updated_at": now}
        | ({"consent_updated_at": now} if consent else {}),
    )
    if not is_new and fields.get("email") is not None:
        # A hard bounce suppresses an address, not a person: a new address may be mailed
        # (transactional at once; marketing once the contact subscribes again).
        await session.exec(
            update(Contact)
            .where(
                col(Contact.contact_id) == contact_id,
                or_(col(Contact.email).is_(None), col(Contact.email) != fields["email"]),
            )
            .values(email_suppressed=None)
        )
    if not is_new and fields:
        await session.exec(
            update(Contact)
            .where(col(Contact.contact_id) == contact_id)
            .values(**fields, updated_at=now)
        )
    contact = await get_contact(session=session, contact_id=contact_id)
    mapping = crm_mapping or FieldMapping.default()
    changed = mapping.pushed_locals(changed_fields(before, local_fields(contact)))
    await mark_changed(session, dialect, contact_id=contact_id, fields=changed, at=now)
    await session.commit()
    if after_commit is not None:
        # E.g. segment-entry triggers (`journeyman.segments.entry.entry_checker`).
        await after_commit(contact_id)
    return await get_contact(session=session, contact_id=contact_id), is_new


async def ensure_contact(*, session: AsyncSession, dialect: str, contact_id: str) -> None:
    """A bare contact for an id first seen in an event (within the caller's transaction)."""
    now = utcnow()
    await insert_if_absent(
        session,
        dialect,
        Contact,
        key=col(Contact.contact_id),
        values={"contact_id": contact_id, "attributes": {}, "created_at": now, "updated_at": now},
    )


async def ensure_contacts_awake(
    connection: AsyncConnection, dialect: str, latest_acts: Mapping[str, datetime]
) -> None:
    """For each contact id -> the time of their latest new event: a bare contact if none
    exists, and a dormant one woken (`journeyman.dormancy`), in one statement for all of them
    (executemany, in the caller's transaction). Ids go in order so that concurrent writers
    take row locks in the same order (PostgreSQL locks a conflicting row for DO UPDATE)."""
    if not latest_acts:
        return
    table: Table = Contact.__table__  # type: ignore[attr-defined]
    now = utcnow()
    insert = dialect_insert(dialect, table)
    statement = insert.values(
        contact_id=bindparam("c_id", type_=table.c.contact_id.type),
        attributes=bindparam("c_attributes", type_=table.c.attributes.type),
        created_at=bindparam("c_now", type_=table.c.created_at.type),
        updated_at=bindparam("c_now", type_=table.c.updated_at.type),
    ).on_conflict_do_update(
        index_elements=[table.c.contact_id],
        set_={"dormant_at": None},
        where=wakes(table.c.dormant_at, bindparam("c_acted_at", type_=table.c.dormant_at.type)),
    )
    await connection.execute(
        statement,
        [
            {"c_id": contact_id, "c_attributes": {}, "c_now": now, "c_acted_at": acted_at}
            for contact_id, acted_at in sorted(latest_acts.items())
        ],
    )


async def get_contact(*, session: AsyncSession, contact_id: str) -> Contact:
    contact = await session.get(Contact, contact_id, populate_existing=True)
    if contact is None:
        raise ContactNotFoundError(contact_id)
    return contact
