"""The API as it runs in production (`journeyman api`, a uvicorn subprocess) under faults:
killed with SIGKILL while routing events, and hit with concurrent copies of one event.

The worker runs in the test (as `journeyman worker` builds it) with a real SMTP sink; the API
reaches Temporal through a TCP proxy that can slow the link, so that routing an event takes
long enough for the kill to land in the middle of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database, EventRecord, Message
from tests.conftest import binary
from worker import wired_worker
from workflows.contracts import workflow_id_for

from .outage_support import (
    ApiProcess,
    TcpProxy,
    by_message_id,
    enrollment_rows,
    event_rows,
    mail_to,
    message_rows,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

API_KEY = "chaos-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ORDERS = 12  # contacts, each with one order sent before the API is killed
# The orders go out this far apart, so that at the kill some are answered, some mid-routing
# and some not yet stored.
STAGGER = 0.1
# Each chunk to or from Temporal waits this long: routing an order (a start and a few
# signals) takes a second or more instead of milliseconds.
SLOW_LINK = 0.05
COPIES = 10
ITEMS = [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}]


@dataclass
class Stack:
    api: ApiProcess
    proxy: TcpProxy
    sink: SmtpSink
    client: Client


@pytest.fixture(scope="module")
async def stack(
    dev_env: WorkflowEnvironment,
    database_url: str,
    database: Database,
    http: httpx.AsyncClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    task_queue = f"tq-chaos-api-{uuid.uuid4().hex[:8]}"
    temporal_host, temporal_port = dev_env.client.service_client.config.target_host.rsplit(":", 1)
    with SmtpSink("127.0.0.1", 0) as sink:
        settings = Settings(
            database_url=database_url,
            task_queue=task_queue,
            api_keys=[API_KEY],
            smtp_host=sink.host,
            smtp_port=sink.port,
            email_from="Journeyman Shop <hello@shop.example>",
            quiet_hours="",
        )
        logs = tmp_path_factory.mktemp("chaos-api")
        async with (
            TcpProxy(temporal_host, int(temporal_port)) as proxy,
            wired_worker(dev_env.client, settings, database, http),
        ):
            api = ApiProcess(
                binary("journeyman"),
                {
                    "JOURNEYMAN_DATABASE_URL": database_url,
                    "JOURNEYMAN_TEMPORAL_ADDRESS": proxy.address,
                    "JOURNEYMAN_TASK_QUEUE": task_queue,
                    "JOURNEYMAN_API_KEYS": API_KEY,
                    "JOURNEYMAN_QUIET_HOURS": "",
                    "JOURNEYMAN_DATA_DIR": str(logs / "data"),
                },
                logs / "api.log",
            )
            try:
                await api.start()
                yield Stack(api=api, proxy=proxy, sink=sink, client=dev_env.client)
            finally:
                api.stop()


def new_contacts(kind: str, count: int) -> list[str]:
    return [f"chaos-{kind}-{uuid.uuid4().hex[:10]}" for _ in range(count)]


async def on_welcome_series_with_a_cart(api: httpx.AsyncClient, contact_id: str) -> None:
    """The contact signed up (welcome series) and left a cart (abandoned cart): both journeys
    an order converts."""
    put = await api.put(f"/v1/contacts/{contact_id}", json={"email": f"{contact_id}@example.com"})
    assert put.status_code in (200, 201), put.text
    for name, properties in (
        ("signed_up", {}),
        ("cart_abandoned", {"cart_id": f"cart-{contact_id}", "items": ITEMS}),
    ):
        response = await api.post(
            "/v1/events", json={"contact_id": contact_id, "name": name, "properties": properties}
        )
        assert response.status_code == 202, response.text


def order(contact_id: str) -> dict[str, Any]:
    return {
        "id": f"order-{uuid.uuid4().hex}",
        "contact_id": contact_id,
        "name": "order_placed",
        "properties": {
            "order_id": f"o-{contact_id}",
            "cart_id": f"cart-{contact_id}",
            "items": ITEMS,
            "total": "349.00",
        },
    }


def duplicated(mail: Counter[str], messages: list[Message]) -> list[tuple[Any, ...]]:
    """What the message log says about each message the sink got more than once."""
    return [
        (m.message_id, m.status, m.attempts, m.reason)
        for m in messages
        if mail.get(m.provider_message_id or "", 0) > 1
    ]


async def started(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


async def test_api_killed_mid_routing_then_retried_reaches_each_journey_once(
    stack: Stack, database: Database
) -> None:
    contacts = new_contacts("kill", ORDERS)
    orders = [order(contact_id) for contact_id in contacts]
    order_ids = {o["id"] for o in orders}

    async with httpx.AsyncClient(base_url=stack.api.url, headers=AUTH, timeout=60) as api:
        await asyncio.gather(*(on_welcome_series_with_a_cart(api, c) for c in contacts))
        await wait_until(
            lambda: enrollment_rows(database, contacts),
            lambda rows: len(rows) == 2 * ORDERS and all(r.status == "active" for r in rows),
            within=60,
            what="every contact on the welcome series and the abandoned cart journey",
        )

        # ---- the orders over a slow link to Temporal; the kill once half of them are
        # stored (their routing under way)
        stack.proxy.delay = SLOW_LINK
        in_flight: list[asyncio.Task[httpx.Response]] = []

        async def send_orders() -> None:
            for o in orders:
                in_flight.append(asyncio.create_task(api.post("/v1/events", json=o)))
                await asyncio.sleep(STAGGER)

        sending = asyncio.create_task(send_orders())

        async def stored() -> list[EventRecord]:
            return [row for row in await event_rows(database, contacts) if row.id in order_ids]

        await wait_until(
            stored,
            lambda rows: len(rows) >= ORDERS // 2,
            within=60,
            what="half of the orders stored",
            every=0.05,
        )
        stack.api.kill()
        await sending  # the rest go to a dead API: refused, as a client would see it
        first = await asyncio.gather(*in_flight, return_exceptions=True)
    stack.proxy.delay = 0

    answered = {
        o["id"]
        for o, r in zip(orders, first, strict=True)
        if isinstance(r, httpx.Response) and r.status_code == 202
    }
    at_kill = {row.id: row for row in await stored()}
    mid_routing = [o for o in orders if o["id"] in at_kill and at_kill[o["id"]].routing is None]
    partly_applied = [
        o
        for o in mid_routing
        if await started(
            stack.client,
            workflow_id_for("post_purchase", o["contact_id"], o["properties"]["order_id"]),
        )
    ]
    assert mid_routing, "the kill should land while some orders were being routed"

    # ---- the API is back; the client retries every order it got no answer for
    await stack.api.start()
    async with httpx.AsyncClient(base_url=stack.api.url, headers=AUTH, timeout=60) as api:
        retried = [await api.post("/v1/events", json=o) for o in orders if o["id"] not in answered]
        # And the whole lot once more: the stored answers, nothing new.
        again = [await api.post("/v1/events", json=o) for o in orders]
    assert [r.status_code for r in retried] == [202] * len(retried), [r.text for r in retried]
    assert [r.status_code for r in again] == [202] * ORDERS, [r.text for r in again]

    async def thank_yous() -> list[Any]:
        rows = await message_rows(database, contacts)
        return [r for r in rows if r.step == "thank_you" and r.status == "sent"]

    await wait_until(thank_yous, lambda rows: len(rows) == ORDERS, within=60, what="thank-yous")
    enrollments = await wait_until(
        lambda: enrollment_rows(database, contacts),
        lambda rows: sum(r.status == "converted" for r in rows) == 2 * ORDERS,
        within=60,
        what="welcome series and abandoned carts converted",
    )

    # Each journey reached once: one enrollment each, one first message each.
    by_journey = Counter((row.contact_id, row.journey) for row in enrollments)
    expected = {
        (contact_id, journey): 1
        for contact_id in contacts
        for journey in ("welcome_series", "abandoned_cart", "post_purchase")
    }
    assert by_journey == expected
    statuses = Counter((row.journey, row.status) for row in enrollments)
    assert statuses == {
        ("welcome_series", "converted"): ORDERS,
        ("abandoned_cart", "converted"): ORDERS,
        ("post_purchase", "active"): ORDERS,
    }
    messages = await message_rows(database, contacts)
    assert Counter((m.contact_id, m.step) for m in messages) == {
        (contact_id, step): 1 for contact_id in contacts for step in ("welcome", "thank_you")
    }
    mail = by_message_id(mail_to(stack.sink.messages, contacts))
    assert mail == {m.provider_message_id: 1 for m in messages}, duplicated(mail, messages)
    rows = [row for row in await event_rows(database, contacts) if row.id in order_ids]
    assert len(rows) == ORDERS and all(row.routing is not None for row in rows)

    print(
        f"\nAPI killed mid-routing: orders {ORDERS}; at the kill {len(answered)} answered, "
        f"{len(at_kill)} stored, {len(mid_routing)} mid-routing ({len(partly_applied)} had "
        f"started post_purchase already), {ORDERS - len(at_kill)} not stored; retried "
        f"{len(retried)} -> {dict(Counter(r.status_code for r in retried))}; enrollments "
        f"{len(enrollments)} (expected {len(expected)}, one per contact and journey), "
        f"statuses {dict(statuses)}; messages expected {2 * ORDERS} seen {sum(mail.values())}"
        f", duplicates {sum(n - 1 for n in mail.values())}; API starts {stack.api.starts}"
    )


async def test_ten_concurrent_copies_of_one_event_have_one_effect(
    stack: Stack, database: Database
) -> None:
    (contact_id,) = new_contacts("copies", 1)
    event = {"id": f"ev-{uuid.uuid4().hex}", "contact_id": contact_id, "name": "signed_up"}
    async with httpx.AsyncClient(base_url=stack.api.url, headers=AUTH, timeout=60) as api:
        put = await api.put(
            f"/v1/contacts/{contact_id}", json={"email": f"{contact_id}@example.com"}
        )
        assert put.status_code in (200, 201), put.text
        answers = await asyncio.gather(*(api.post("/v1/events", json=event) for _ in range(COPIES)))

    assert [a.status_code for a in answers] == [202] * COPIES, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert all(body == bodies[0] for body in bodies)
    assert [(j["journey"], j["action"]) for j in bodies[0]["journeys"]] == [
        ("welcome_series", "started")
    ]
    messages = await wait_until(
        lambda: message_rows(database, [contact_id]),
        lambda rows: [r.status for r in rows] == ["sent"],
        within=30,
        what="the welcome email sent",
    )

    async def received() -> list[EmailMessage]:
        return mail_to(stack.sink.messages, [contact_id])

    await wait_until(
        received,
        lambda mail: len(mail) >= 1,
        within=10,
        what="the welcome email received",
    )
    events = await event_rows(database, [contact_id])
    enrollments = await enrollment_rows(database, [contact_id])
    mail = by_message_id(mail_to(stack.sink.messages, [contact_id]))
    assert [e.id for e in events] == [event["id"]]
    assert [(e.journey, e.status) for e in enrollments] == [("welcome_series", "active")]
    assert mail == {messages[0].provider_message_id: 1}, duplicated(mail, messages)
    print(
        f"\n{COPIES} concurrent copies of one event: answers "
        f"{dict(Counter(a.status_code for a in answers))}, identical {len(set(map(str, bodies)))}"
        f" distinct body; event rows {len(events)}, enrollments {len(enrollments)}, messages "
        f"{len(messages)}, emails {sum(mail.values())}"
    )
