"""Many local changes racing many pushes: every contact ends with its latest value in the CRM."""

from __future__ import annotations

import asyncio

from activities.crm import CrmConnector
from activities.crm_sync import CrmSyncActivities
from journeyman.crm.contracts import PushRequest
from journeyman.settings import Settings
from persistence import Database
from persistence.models import utcnow
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import email_of
from tests.crm_sync.helpers import local_change, outbox_row

CONTACTS = 6
CHANGES = 15


async def test_concurrent_changes_and_pushes_lose_no_change(
    database: Database,
    settings: Settings,
    connector: CrmConnector,
    hubspot: FakeHubSpot,
    contact_id: str,
    clean_crm: None,
) -> None:
    # No quiet window: every push takes whatever is pending, mid-stream.
    eager = settings.model_copy(update={"crm_sync_window_seconds": 0.0, "crm_batch_size": 4})
    sync = CrmSyncActivities(database=database, settings=eager, connector=connector)
    contacts = [f"{contact_id}-{i}" for i in range(CONTACTS)]
    for contact in contacts:
        await local_change(database, contact, at=utcnow(), email=email_of(contact))
    writing = True

    async def write(contact: str) -> None:
        for change in range(CHANGES):
            await local_change(
                database, contact, at=utcnow(), attributes={"company": f"{contact} v{change}"}
            )
            await asyncio.sleep(0)

    async def push() -> int:
        rounds = 0
        while writing:
            await sync.push_due(PushRequest(now=utcnow()))
            rounds += 1
        return rounds

    pushers = [asyncio.create_task(push()) for _ in range(2)]
    await asyncio.gather(*(write(contact) for contact in contacts))
    writing = False
    rounds = sum(await asyncio.gather(*pushers))
    assert rounds > 2, "the pushes did not overlap the changes"
    for _ in range(CONTACTS):
        if (await sync.push_due(PushRequest(now=utcnow()))).pushed == 0:
            break
    for contact in contacts:
        stored = hubspot.contact(email_of(contact))
        assert stored is not None
        assert stored.properties["company"] == f"{contact} v{CHANGES - 1}"
        assert await outbox_row(database, contact) is None
    assert len(hubspot.calls("/batch/upsert")) > 1
