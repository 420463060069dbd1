"""Making local changes the way Journeyman does: the value and its outbox mark together."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlmodel import select

from journeyman.crm.outbox import mark_changed
from persistence import Contact, CrmOutbox, Database, LeadScore
from persistence.models import utcnow


async def local_change(database: Database, contact_id: str, *, at: datetime, **fields: Any) -> None:
    """Set contact fields (`attributes` is merged) and mark them, in one transaction."""
    async with database.session() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            contact = Contact(contact_id=contact_id, attributes={})
        changed: list[str] = []
        for name, value in fields.items():
            if name == "attributes":
                contact.attributes = {**(contact.attributes or {}), **value}
                changed.extend(f"attributes.{key}" for key in value)
            else:
                setattr(contact, name, value)
                changed.append(name)
        session.add(contact)
        await mark_changed(session, database.dialect, contact_id=contact_id, fields=changed, at=at)
        await session.commit()


async def outbox_row(database: Database, contact_id: str) -> CrmOutbox | None:
    async with database.session() as session:
        return (
            await session.exec(select(CrmOutbox).where(CrmOutbox.contact_id == contact_id))
        ).first()


async def crm_id_of(database: Database, contact_id: str) -> str | None:
    async with database.session() as session:
        contact = await session.get(Contact, contact_id, populate_existing=True)
    return contact.crm_id if contact else None


class Outbox:
    """A mailer that keeps what it is given; `fail` makes the next sends raise first."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.fail = fail

    async def send(self, message: EmailMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError("smtp down")
        self.sent.append(message)


async def qualified_lead(database: Database, contact_id: str) -> None:
    """A contact with an email, a company, an owner in the CRM and a qualifying score."""
    await local_change(
        database,
        contact_id,
        at=utcnow(),
        email=f"{contact_id}@example.com",
        lifecycle_stage="marketingqualifiedlead",
        attributes={"company": "Acme", "hubspot_owner_id": "77"},
    )
    async with database.session() as session:
        session.add(LeadScore(contact_id=contact_id, points=62.0, as_of=utcnow(), qualified=True))
        await session.commit()
