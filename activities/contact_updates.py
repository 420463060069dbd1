"""The `update_contact` activity: changes a journey makes to its contact.

List hygiene (re-engagement marks a silent contact dormant) and progressive profiling (the
birthday journey remembers the year it sent its email) both go through here. One transaction
under the contact's lock: read, merge, write, and the CRM outbox mark for the attributes the
CRM mapping pushes, so the CRM hears about the change exactly when it commits.

Idempotent: applying the same update twice leaves the contact as applying it once did (a
repeat answers `changed=[]`); a dormant contact keeps the moment it first became dormant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col
from temporalio import activity

from activities.caps import lock_contact
from activities.parts import WorkerParts
from journeyman.crm.mapping import crm_mapping
from journeyman.crm.outbox import mark_changed
from journeyman.settings import Settings
from persistence import Contact, Database
from persistence.models import utcnow
from workflows.contracts import UPDATE_CONTACT, ContactUpdate, ContactUpdateResult

log = logging.getLogger("journeyman.contacts")

# How `ContactUpdateResult.changed` names the dormant flag (attributes are `attributes.<k>`).
DORMANT = "dormant"
ATTRIBUTES = "attributes."

Clock = Callable[[], datetime]


class ContactUpdateActivities:
    def __init__(self, *, database: Database, settings: Settings, clock: Clock = utcnow) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock

    @activity.defn(name=UPDATE_CONTACT)
    async def update_contact(self, change: ContactUpdate) -> ContactUpdateResult:
        """Apply `change`; an unknown contact changes nothing (there is nobody to update)."""
        now = self.clock()
        dialect = self.database.dialect
        async with self.database.session() as session:
            # Serialises against the API, provider feedback and other journeys writing
            # the same contact: the merge below reads what they committed.
            await lock_contact(session, change.contact_id, dialect=dialect)
            contact = await session.get(Contact, change.contact_id, populate_existing=True)
            if contact is None:
                await session.rollback()
                return ContactUpdateResult(contact_id=change.contact_id)
            attributes, changed_keys = merged(dict(contact.attributes), change.attributes)
            values: dict[str, Any] = {}
            changed = [f"{ATTRIBUTES}{key}" for key in changed_keys]
            if changed_keys:
                values["attributes"] = attributes
            dormant_at = _dormant_at(contact.dormant_at, change.dormant, now)
            if dormant_at != contact.dormant_at:
                values["dormant_at"] = dormant_at
                changed.append(DORMANT)
            if not values:
                await session.rollback()
                return ContactUpdateResult(contact_id=change.contact_id)
            await session.exec(
                update(Contact)
                .where(col(Contact.contact_id) == change.contact_id)
                .values(**values, updated_at=now)
            )
            pushed = crm_mapping(self.settings).pushed_locals(changed)
            await mark_changed(
                session, dialect, contact_id=change.contact_id, fields=pushed, at=now
            )
            await session.commit()
        log.info("Contact %s updated (%s): %s", change.contact_id, change.reason, changed)
        return ContactUpdateResult(contact_id=change.contact_id, changed=changed)


def merged(current: dict[str, Any], changes: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`current` with `changes` merged in (a None value removes the key), and the keys that
    really changed, sorted."""
    changed: list[str] = []
    for key, value in changes.items():
        if value is None:
            if key in current:
                del current[key]
                changed.append(key)
        elif key not in current or current[key] != value:
            current[key] = value
            changed.append(key)
    return current, sorted(changed)


def _dormant_at(current: datetime | None, dormant: bool | None, now: datetime) -> datetime | None:
    if dormant is None:
        return current
    if dormant:
        return current or now  # dormant since the first time we found them so
    return None


def contact_update_parts(database: Database, settings: Settings) -> WorkerParts:
    """What the worker registers for `update_contact`."""
    acts = ContactUpdateActivities(database=database, settings=settings)
    return WorkerParts(activities=[acts.update_contact])
