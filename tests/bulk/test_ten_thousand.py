"""THE slow one (issue 6's "done when"): 10,000 contacts through one bulk enrollment on the
Temporal dev server, checking progress, rate and no duplicates.

To keep it fast the enrolled journeys are started but never executed: they wait on a task
queue no worker polls, while the bulk workflow and its activities run on another. A start is
then what the bulk enrollment really does (the re-entry check in the database, the
`start_workflow` call, the describe that tells "started" from a refusal), and the journeys'
own work is not measured. Counting them needs no worker either: they are listed by their
task queue and `ContactId` search attribute through the Temporal client.

The 10,000 contacts go to a database of their own, so that tests evaluating something over
every contact of the shared session database (segments) do not pay for them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from persistence import Database, create_database, migrate
from tests.api.helpers import eventually
from tests.bulk.conftest import BulkSetup, bulk_setup, make_contacts
from tests.conftest import POSTGRES_ADMIN_DSN, postgres_available
from workflows.contracts import CONTACT_ID, BulkProgress

COUNT = 10_000
RATE = 500.0


@dataclass
class Seen:
    at: float  # wall clock, seconds since the start
    progress: BulkProgress


async def follow(setup: BulkSetup, journey: str, bulk_id: str) -> tuple[BulkProgress, list[Seen]]:
    began = time.monotonic()
    seen: list[Seen] = []
    while True:
        progress = await setup.service.progress(journey, bulk_id)
        seen.append(Seen(time.monotonic() - began, progress))
        if progress.status != "running":
            return progress, seen
        await asyncio.sleep(0.25)


async def enrolled_contacts(setup: BulkSetup) -> list[str]:
    """ContactId of every journey started on the unpolled queue (visibility is eventually
    consistent, so the caller waits for the count it expects)."""
    query = f"TaskQueue = '{setup.journeys_queue}'"
    contacts: list[str] = []
    async for execution in setup.client.list_workflows(query, page_size=1000):
        contacts.append(execution.typed_search_attributes.get(CONTACT_ID) or "")
    return contacts


@pytest.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    """A fresh migrated database for this test alone (PostgreSQL when reachable)."""
    if postgres_available():
        name = f"journeyman_bulk_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        url = f"{base}/{name}"
    else:
        name, url = "", f"sqlite:///{tmp_path / 'bulk.db'}"
    migrate(url)
    database = create_database(url)
    yield database, url
    await database.dispose()
    if name:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.integration
@pytest.mark.timeout(900)
async def test_slow_ten_thousand_contacts_enrolled_once_each_at_the_rate_with_progress(
    dev_env: WorkflowEnvironment, own_database: tuple[Database, str], journey: str
) -> None:
    database, database_url = own_database
    setup = bulk_setup(dev_env.client, database, database_url)
    ids = await make_contacts(database, COUNT)
    async with setup.worker():
        began = time.monotonic()
        started = await setup.service.start(journey, contact_ids=ids, starts_per_second=RATE)
        first, seen = await follow(setup, journey, started.id)
        wall = time.monotonic() - began
        # The same list again: everyone is enrolled already, nobody is started twice.
        again = await setup.service.start(journey, contact_ids=ids, starts_per_second=RATE)
        second, _ = await follow(setup, journey, again.id)

    print(
        f"\n10,000 contacts: {wall:.1f} s wall, measured {first.rate:.1f}/s "
        f"(limit {RATE:.0f}/s), {first.pages} pages, {len(seen)} progress reads"
    )
    assert started.total == COUNT
    assert first.status == "completed"
    assert (first.total, first.done, first.started, first.failed) == (COUNT, COUNT, COUNT, 0)
    assert first.skipped == {}

    # Progress seen mid-way, increasing, always out of 10,000, the ETA shrinking with it.
    middle = [s for s in seen if 0 < s.progress.done < COUNT]
    assert len(middle) >= 3, [s.progress.done for s in seen]
    # (0 only in the first read, before the workflow counted the list)
    assert all(s.progress.total == COUNT for s in seen if s.progress.done)
    dones = [s.progress.done for s in seen]
    assert dones == sorted(dones)
    for snapshot in (s.progress for s in middle):
        # What is left at the rate measured so far (the limit before the first page's end).
        left = (COUNT - snapshot.done) / (snapshot.rate or RATE)
        assert snapshot.eta_seconds is not None and abs(snapshot.eta_seconds - left) < 1e-6

    # The rate: in workflow time (the progress' own measure) and on the wall clock.
    assert first.rate <= RATE
    assert COUNT / wall <= RATE * 1.05
    assert first.started_at is not None and first.finished_at is not None
    assert (first.finished_at - first.started_at).total_seconds() >= COUNT / RATE

    # No duplicates: exactly 10,000 journeys started, one per contact.
    contacts = await eventually(
        lambda: enrolled_contacts(setup), lambda found: len(found) >= COUNT, within=30
    )
    assert len(contacts) == COUNT
    assert sorted(contacts) == ids
    counted = await setup.client.count_workflows(f"TaskQueue = '{setup.journeys_queue}'")
    assert counted.count == COUNT

    assert second.status == "completed"
    assert (second.done, second.started, second.failed) == (COUNT, 0, 0)
    assert second.skipped == {"reentry_never": COUNT}
    assert len(await enrolled_contacts(setup)) == COUNT
