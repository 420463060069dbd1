"""Every provider down for a minute at once: the SMTP server (stopped, then started again on
the same port), the SMS and push APIs and HubSpot (503 to every call). Sends and the CRM push
retry with backoff; once the providers are back everything is delivered, once, and no journey
failed.

One shared window keeps the suite's time down: the outages overlap instead of queueing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from journeyman.crm.contracts import CRM_SYNC_WORKFLOW, SyncInput
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, CrmOutbox, Database
from persistence.models import utcnow
from tests.channels.helpers import settings_for
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.helpers import local_change
from workflows.contracts import EnrollmentResult

from .outage_support import (
    DEVICE_TOKEN,
    HttpProviders,
    by_message_id,
    mail_to,
    message_rows,
    outage_worker,
    send_attempts,
    start_send,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

OUTAGE_SECONDS = 60.0
CHANNELS = ("email", "sms", "push")
PER_CHANNEL = 3
CRM_CONTACTS = 3
# The CRM changes come this far into the outage. The sync's push retries 5, 10, 20, 40 s
# apart, so a push failing from ~29 s on is next tried ~4 s after the minute: the CRM part
# ends with the sends' instead of some 15 s later. (It would deliver either way.)
CRM_CHANGES_AT = 28.0
# Sends retry 1 s apart, doubling up to 5 min (`workflows.runtime.SEND_RETRY`), for a day: a
# send failing from the start of the minute is tried at 0, 1, 3, 7, 15, 31 and 63 s, so it goes
# out some 3 s after the providers are back (in the worst case, an attempt just before the
# restore, ~60 s after). A retry every second would be ~60 attempts; backoff makes it 7.
MAX_ATTEMPTS_WITH_BACKOFF = 10


@pytest.fixture
def providers() -> Iterator[HttpProviders]:
    fake = HttpProviders()
    with fake.server.running():
        yield fake


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    # Port 0 picks a free port now; stop() and start() keep it, like a restarted mail server.
    with SmtpSink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def settings(
    database_url: str,
    task_queue: str,
    providers: HttpProviders,
    sink: SmtpSink,
    hubspot: FakeHubSpot,
) -> Settings:
    return settings_for(
        providers.url,
        database_url=database_url,
        task_queue=task_queue,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        quiet_hours="",
        crm="hubspot",
        hubspot_api_url=hubspot.url,
        hubspot_token=hubspot.token,
        hubspot_client_secret=hubspot.client_secret,
        crm_sync_window_seconds=0,
    )


async def add_contact(database: Database, channel: str) -> str:
    contact_id = f"chaos-{channel}-{uuid.uuid4().hex[:10]}"
    async with database.session() as session:
        session.add(
            Contact(
                contact_id=contact_id,
                email=f"{contact_id}@example.com",
                phone="+44 20 7946 0958",
                timezone="Europe/London",
                attributes={"first_name": "Ada", "push_token": DEVICE_TOKEN},
            )
        )
        await session.commit()
    return contact_id


async def clear_crm_outbox(database: Database) -> None:
    """The outbox is global: rows other tests left would be pushed to this HubSpot too."""
    async with database.session() as session:
        await session.exec(delete(CrmOutbox))
        await session.commit()


def upserted_emails(calls: list[Any]) -> list[str]:
    return [
        str(one.get("id"))
        for call in calls
        for one in (call.json or {}).get("inputs", [])
        if isinstance(one, dict)
    ]


async def test_all_providers_down_for_a_minute_then_each_message_delivered_once(
    dev_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    providers: HttpProviders,
    hubspot: FakeHubSpot,
    http: httpx.AsyncClient,
) -> None:
    client = dev_env.client
    contacts = {
        channel: [await add_contact(database, channel) for _ in range(PER_CHANNEL)]
        for channel in CHANNELS
    }
    every_contact = [c for ids in contacts.values() for c in ids]
    crm_contacts = [f"chaos-crm-{uuid.uuid4().hex[:10]}" for _ in range(CRM_CONTACTS)]
    crm_emails = {f"{c}@example.com" for c in crm_contacts}
    await clear_crm_outbox(database)

    async with outage_worker(client, settings, database, http):
        # A CRM sync of this test's own, on its queue (the deployment's singleton id may be
        # held by another test's run on another queue).
        sync = await client.start_workflow(
            CRM_SYNC_WORKFLOW,
            SyncInput(),
            id=f"crm-sync-{settings.task_queue}",
            task_queue=settings.task_queue,
        )
        try:
            # ---- the outage begins: every provider at once
            sink.stop()
            providers.down = True
            hubspot.outage = True
            began = time.monotonic()
            handles: list[WorkflowHandle[Any, EnrollmentResult]] = await asyncio.gather(
                *(
                    start_send(client, settings, contact_id, channel)
                    for channel, ids in contacts.items()
                    for contact_id in ids
                )
            )
            # Every send tried and failed at least once, and is waiting for its retry.
            await wait_until(
                lambda: message_rows(database, every_contact),
                lambda rows: (
                    len(rows) == len(every_contact) and all(r.status == "retrying" for r in rows)
                ),
                within=30,
                what="every send failed once and is retrying",
            )
            await asyncio.sleep(max(0.0, began + CRM_CHANGES_AT - time.monotonic()))
            for contact_id in crm_contacts:
                await local_change(
                    database,
                    contact_id,
                    at=utcnow(),
                    email=f"{contact_id}@example.com",
                    lifecycle_stage="lead",
                )

            async def upserts() -> list[Any]:
                return hubspot.calls("/batch/upsert")

            async def stored() -> set[str]:
                return {email for email in crm_emails if hubspot.contact(email)}

            await wait_until(
                upserts,
                lambda calls: bool(crm_emails & set(upserted_emails(calls))),
                within=15,
                what="the CRM push tried during the outage",
            )
            # The rest of the minute: the outage is real time by nature.
            await asyncio.sleep(max(0.0, began + OUTAGE_SECONDS - time.monotonic()))
            refused_upserts = len(hubspot.calls("/batch/upsert"))
            during = {
                "send_tries": sum(r.attempts for r in await message_rows(database, every_contact)),
                "http_503": dict(providers.refused),
                "crm_503": refused_upserts,
            }

            # ---- the providers are back (the SMTP server on the same port)
            sink.start()
            providers.down = False
            hubspot.outage = False
            restored = time.monotonic()
            assert sink.port == settings.smtp_port
            results = await asyncio.wait_for(
                asyncio.gather(*(handle.result() for handle in handles)), timeout=180
            )
            sends_done_after = time.monotonic() - restored
            pushed = await wait_until(
                stored,
                lambda emails: emails == crm_emails,
                within=120,
                what="every CRM contact pushed",
            )
            crm_done_after = time.monotonic() - restored
        finally:
            await sync.terminate(reason="test over")
        attempts = [await send_attempts(handle) for handle in handles]

    rows = {row.contact_id: row for row in await message_rows(database, every_contact)}
    # No journey failed: each completed, its one send `sent`.
    assert [r.status for r in results] == ["completed"] * len(handles)
    assert {tuple((s.name, s.outcome) for s in r.steps) for r in results} == {
        (("message", "sent"),)
    }
    assert {row.status for row in rows.values()} == {"sent"}
    # Retried with backoff: more than once each, far fewer than once a second.
    tries = [row.attempts for row in rows.values()]
    assert min(tries) >= 2 and max(tries) <= MAX_ATTEMPTS_WITH_BACKOFF, tries
    assert min(attempts) >= 2 and max(attempts) <= MAX_ATTEMPTS_WITH_BACKOFF, attempts

    # Each message arrived exactly once: email by Message-ID, SMS and push by message id.
    email_ids = {rows[c].provider_message_id for c in contacts["email"]}
    seen_mail = by_message_id(mail_to(sink.messages, every_contact))
    assert seen_mail == dict.fromkeys(email_ids, 1)
    http_ids = {rows[c].message_id for channel in ("sms", "push") for c in contacts[channel]}
    assert {key: providers.accepted[key] for key in http_ids} == dict.fromkeys(http_ids, 1)
    assert sum(providers.accepted.values()) == len(http_ids)
    assert all(providers.refused[channel] >= PER_CHANNEL for channel in ("sms", "push"))

    # HubSpot: refused during the outage, then each contact upserted once.
    accepted_upserts = hubspot.calls("/batch/upsert")[refused_upserts:]
    after = [e for e in upserted_emails(accepted_upserts) if e in crm_emails]
    assert sorted(after) == sorted(crm_emails)
    assert pushed == crm_emails

    expected = len(every_contact)
    duplicates = sum(n - 1 for n in seen_mail.values()) + sum(
        providers.accepted[key] - 1 for key in http_ids
    )
    print(
        f"\nprovider outage {OUTAGE_SECONDS:.0f}s: enrollments {len(handles)} completed "
        f"{sum(r.status == 'completed' for r in results)}; messages expected {expected} seen "
        f"{len(seen_mail) + sum(providers.accepted[k] for k in http_ids)} "
        f"(email {len(seen_mail)}, sms+push {len(http_ids)}); duplicates {duplicates}; "
        f"send attempts min {min(attempts)} max {max(attempts)} (message rows {min(tries)}-"
        f"{max(tries)}); during the outage: {during}; sends all done {sends_done_after:.1f}s "
        f"after restore; CRM contacts {len(crm_emails)} pushed once each, "
        f"{refused_upserts} calls refused, done {crm_done_after:.1f}s after restore"
    )
