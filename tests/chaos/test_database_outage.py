"""PostgreSQL unreachable for 30 s, behind a TCP proxy that resets every connection, open or
new: the API answers every call 503 with `Retry-After` (never 500), the events a client then
retries with the same ids are applied once, and the worker's activities retry and lose
nothing. The API and the worker reach the database only through the proxy, so their pools
hold connections the cut kills: after it, those must not turn into 500s either.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, create_database
from tests.support import running_app
from workflows.contracts import RECORD_LIFECYCLE_BATCH

from .outage_support import (
    TcpProxy,
    by_message_id,
    database_address,
    enrollment_rows,
    event_rows,
    local_activity_attempts,
    mail_to,
    message_rows,
    outage_worker,
    proxied_url,
    send_attempts,
    start_send,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

API_KEY = "chaos-db-key"
OUTAGE_SECONDS = 30.0
SIGNUPS = 6  # contacts whose signed_up event is posted during the outage, then retried
SENDS = 4  # enrollments started before the outage, their email due in it
# How long those wait before sending: the cut comes meanwhile (a second or two after they
# start), with room to spare on a busy machine.
PAUSE_SECONDS = 7.0
# Calls stop this long before the link comes back, so none straddles the restore.
QUIET_BEFORE_RESTORE = 2.0


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is cut between PostgreSQL and its clients")
    async with TcpProxy(*database_address(database_url)) as running:
        yield running


@pytest.fixture
async def proxied(database_url: str, proxy: TcpProxy) -> AsyncIterator[Database]:
    """The database as the API and the worker see it: through the proxy."""
    database = create_database(proxied_url(database_url, proxy))
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str, proxy: TcpProxy, task_queue: str, sink: SmtpSink) -> Settings:
    return Settings(
        database_url=proxied_url(database_url, proxy),
        task_queue=task_queue,
        api_keys=[API_KEY],
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        email_from="Journeyman Shop <hello@shop.example>",
        quiet_hours="",
    )


@asynccontextmanager
async def api_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


def contact_ids(kind: str, count: int) -> list[str]:
    return [f"chaos-db-{kind}-{uuid.uuid4().hex[:10]}" for _ in range(count)]


async def test_database_down_30s_api_answers_503_retries_apply_once_sends_deliver(
    dev_env: WorkflowEnvironment,
    database: Database,
    proxied: Database,
    proxy: TcpProxy,
    settings: Settings,
    sink: SmtpSink,
    http: httpx.AsyncClient,
) -> None:
    client = dev_env.client
    signups = contact_ids("signup", SIGNUPS)
    senders = contact_ids("send", SENDS)
    events = [
        {"id": f"ev-{uuid.uuid4().hex}", "contact_id": contact_id, "name": "signed_up"}
        for contact_id in signups
    ]
    during: list[httpx.Response] = []
    # A second API process, in effect: its own pool, filled before the cut and left alone
    # during it, so that after it every pooled connection is a dead one.
    quiet_db = create_database(settings.database_url)

    async with (
        outage_worker(client, settings, proxied, http),
        running_app(settings, client, proxied) as app,
        running_app(settings, client, quiet_db) as quiet_app,
        api_client(app) as api,
        api_client(quiet_app) as quiet,
    ):
        # The contacts, through the API: its pool holds live connections when the cut comes.
        for contact_id in [*signups, *senders]:
            put = await api.put(
                f"/v1/contacts/{contact_id}", json={"email": f"{contact_id}@example.com"}
            )
            assert put.status_code in (200, 201), put.text
        warm = await asyncio.gather(
            *(quiet.get(f"/v1/contacts/{contact_id}") for contact_id in signups)
        )
        assert [r.status_code for r in warm] == [200] * SIGNUPS
        pooled = quiet_db.engine.pool.checkedin()  # type: ignore[attr-defined]
        started = time.monotonic()
        handles = [
            await start_send(client, settings, contact_id, "email", pause_seconds=PAUSE_SECONDS)
            for contact_id in senders
        ]
        # Entered (the worker wrote their rows, so its pool is warm too): now the cut.
        await wait_until(
            lambda: enrollment_rows(database, senders),
            lambda rows: len(rows) == SENDS,
            within=30,
            what="the enrollments entered",
        )

        # ---- the database goes away for 30 s
        proxy.cut()
        began = time.monotonic()
        assert began - started < PAUSE_SECONDS, "the cut came after the sends were due"
        while time.monotonic() < began + OUTAGE_SECONDS - QUIET_BEFORE_RESTORE:
            for event in events:
                during.append(await api.post("/v1/events", json=event))
            during.append(await api.get(f"/v1/contacts/{signups[0]}"))
            during.append(await api.put(f"/v1/contacts/{signups[0]}", json={"locale": "it-IT"}))
            await asyncio.sleep(2)
        mail_before_restore = len(mail_to(sink.messages, senders))
        await asyncio.sleep(max(0.0, began + OUTAGE_SECONDS - time.monotonic()))

        # ---- it is back; the client retries every event with the same id
        proxy.restore()
        restored = time.monotonic()
        stale = await asyncio.gather(
            *(quiet.get(f"/v1/contacts/{contact_id}") for contact_id in signups)
        )
        retried = [await api.post("/v1/events", json=event) for event in events]
        again = [await api.post("/v1/events", json=event) for event in events]
        results = await asyncio.wait_for(
            asyncio.gather(*(handle.result() for handle in handles)), timeout=120
        )
        sends_done_after = time.monotonic() - restored
        await wait_until(
            lambda: message_rows(database, signups),
            lambda rows: len(rows) == SIGNUPS and all(r.status == "sent" for r in rows),
            within=60,
            what="every welcome email sent",
        )
        attempts = [await send_attempts(handle) for handle in handles]
        bookkeeping = [
            await local_activity_attempts(handle, RECORD_LIFECYCLE_BATCH) for handle in handles
        ]
    await quiet_db.dispose()

    # Every call made during the outage: 503, Retry-After, a JSON detail; never a 500.
    statuses = Counter(response.status_code for response in during)
    assert statuses == {503: len(during)}, [(r.status_code, r.text) for r in during]
    assert all(r.headers.get("Retry-After", "").isdigit() for r in during)
    assert all("unreachable" in r.json()["detail"] for r in during)
    # The untouched pool's dead connections were replaced (pre-ping), not served as errors.
    assert [r.status_code for r in stale] == [200] * SIGNUPS, [r.text for r in stale]
    # The contact update refused during the outage left nothing behind.
    async with database.session() as session:
        first = await session.get(Contact, signups[0])
    assert first is not None and first.locale != "it-IT"
    # After it, each retry is accepted (the pools' dead connections did not leak as 500s) and
    # a second retry answers the same.
    assert [r.status_code for r in retried] == [202] * SIGNUPS, [r.text for r in retried]
    assert [r.json() for r in again] == [r.json() for r in retried]
    assert {tuple((j["journey"], j["action"]) for j in r.json()["journeys"]) for r in retried} == {
        (("welcome_series", "started"),)
    }

    # Applied once: one event row, one enrollment, one message, one email each.
    events_by_contact = Counter(row.contact_id for row in await event_rows(database, signups))
    enrollments = await enrollment_rows(database, signups)
    messages = await message_rows(database, signups)
    assert events_by_contact == dict.fromkeys(signups, 1)
    assert Counter((e.contact_id, e.journey) for e in enrollments) == {
        (contact_id, "welcome_series"): 1 for contact_id in signups
    }
    assert Counter((m.contact_id, m.step) for m in messages) == {
        (contact_id, "welcome"): 1 for contact_id in signups
    }
    welcome_mail = by_message_id(mail_to(sink.messages, signups))
    assert welcome_mail == {m.provider_message_id: 1 for m in messages}

    # The sends due during the outage went out after it, once each; no journey failed.
    assert mail_before_restore == 0
    assert [r.status for r in results] == ["completed"] * SENDS
    assert {tuple((s.name, s.outcome) for s in r.steps) for r in results} == {
        (("pause", "waited"), ("message", "sent"))
    }
    send_rows = await message_rows(database, senders)
    send_mail = by_message_id(mail_to(sink.messages, senders))
    assert send_mail == {m.provider_message_id: 1 for m in send_rows}
    assert len(send_mail) == SENDS
    # What met the outage was the send after the pause: it retried through it rather than
    # failing the enrollment. The pause's step record waited in the workflow (lifecycle
    # records are batched up to the next durable wait): two writes each, "entered" before the
    # cut and the rest at the end, after it.
    assert min(attempts) >= 2, attempts
    assert [len(writes) for writes in bookkeeping] == [2] * SENDS, bookkeeping

    duplicates = sum(n - 1 for n in [*welcome_mail.values(), *send_mail.values()])
    print(
        f"\ndatabase outage {OUTAGE_SECONDS:.0f}s: API calls during it {len(during)} "
        f"({dict(statuses)}, all with Retry-After); proxy reset {proxy.reset} open and refused "
        f"{proxy.refused} new connections; events retried {SIGNUPS} -> "
        f"{dict(Counter(r.status_code for r in retried))}; first calls on a pool of {pooled} "
        f"dead connections {dict(Counter(r.status_code for r in stale))}; event rows "
        f"{sum(events_by_contact.values())}"
        f", enrollments {len(enrollments)}, messages {len(messages)}, welcome emails "
        f"{sum(welcome_mail.values())}; sends due in the outage {SENDS}: delivered "
        f"{len(send_mail)} ({mail_before_restore} before the restore; the cut "
        f"{began - started:.1f}s after their start), lifecycle record attempts "
        f"{bookkeeping}, send attempts {attempts}, all done "
        f"{sends_done_after:.1f}s after restore; duplicates {duplicates}"
    )
