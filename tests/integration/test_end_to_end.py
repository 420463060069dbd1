"""The whole path with every part real: HTTP API -> Temporal dev server -> the worker as
`journeyman worker` builds it -> SMTP -> the database.

This is the README's walkthrough, asserted.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database, Enrollment, Message
from tests.api.helpers import eventually
from worker import wired_worker
from workflows.contracts import EnrollmentResult

API_KEY = "e2e-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
pytestmark = pytest.mark.integration


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def settings(database_url: str, task_queue: str, sink: SmtpSink) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[API_KEY],
        smtp_host=sink.host,
        smtp_port=sink.port,
        email_from="Journeyman Shop <hello@shop.example>",
        # The walkthrough's emails go out at once whatever the hour (quiet hours would hold
        # the welcome email back at night in the contact's Rome); the rules have their own
        # tests in tests/activities.
        quiet_hours="",
    )


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings, http: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    worker = wired_worker(dev_env.client, settings, database, http)
    app = create_app(settings, client=dev_env.client, database=database)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def statuses(database: Database, contact_id: str) -> dict[str, str]:
    async with database.session() as session:
        rows = (
            await session.exec(select(Enrollment).where(Enrollment.contact_id == contact_id))
        ).all()
    return {row.journey: row.status for row in rows}


async def test_walkthrough_contact_events_email_and_conversion(
    api: httpx.AsyncClient, sink: SmtpSink, database: Database, dev_env: WorkflowEnvironment
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    address = f"{contact_id}@example.com"
    put = await api.put(
        f"/v1/contacts/{contact_id}",
        json={"email": address, "timezone": "Europe/Rome", "attributes": {"first_name": "Ada"}},
        headers=AUTH,
    )
    assert put.status_code in (200, 201), put.text

    # signed_up starts the welcome series, whose first email goes out at once over SMTP.
    signed_up = await api.post(
        "/v1/events", json={"contact_id": contact_id, "name": "signed_up"}, headers=AUTH
    )
    assert signed_up.status_code == 202, signed_up.text
    assert [(j["journey"], j["action"]) for j in signed_up.json()["journeys"]] == [
        ("welcome_series", "started")
    ]
    (welcome,) = await sink.wait_for(1, within=20)
    assert welcome["To"] == address
    assert welcome.get_content_type() == "multipart/alternative"
    assert "Ada" in welcome.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # The same event again (a client retry): same answer, nothing new sent or started.
    retried = await api.post(
        "/v1/events",
        json={"id": signed_up.json()["id"], "contact_id": contact_id, "name": "signed_up"},
        headers=AUTH,
    )
    assert retried.json() == signed_up.json()

    cart = {
        "cart_id": "cart-7",
        "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    }
    abandoned = await api.post(
        "/v1/events",
        json={
            "id": f"ev-{uuid.uuid4().hex}",
            "contact_id": contact_id,
            "name": "cart_abandoned",
            "properties": cart,
        },
        headers=AUTH,
    )
    assert abandoned.status_code == 202, abandoned.text
    (cart_journey,) = abandoned.json()["journeys"]
    assert cart_journey["workflow_id"] == f"journey:abandoned_cart:{contact_id}:cart-7"

    async def listing() -> list[dict[str, object]]:
        response = await api.get(f"/v1/contacts/{contact_id}/journeys", headers=AUTH)
        assert response.status_code == 200, response.text
        found: list[dict[str, object]] = response.json()
        return found

    enrollments = await eventually(
        listing,
        lambda rows: (
            {r["journey"] for r in rows} == {"welcome_series", "abandoned_cart"}
            and all(r["source"] == "live" for r in rows)
        ),
        within=20,
    )
    by_journey = {row["journey"]: row for row in enrollments}
    assert by_journey["abandoned_cart"]["current_step"] == "grace_period"
    assert by_journey["welcome_series"]["current_step"] == "pause_1"

    # The order for that cart converts the cart journey and the welcome series, and starts
    # post_purchase, whose thank-you goes out at once.
    order = await api.post(
        "/v1/events",
        json={
            "contact_id": contact_id,
            "name": "order_placed",
            "properties": {"cart_id": "cart-7", "order_id": "o-1", **cart},
        },
        headers=AUTH,
    )
    assert order.status_code == 202, order.text
    actions = {(j["journey"], j["action"]) for j in order.json()["journeys"]}
    assert actions == {
        ("post_purchase", "started"),
        ("abandoned_cart", "signalled"),
        ("welcome_series", "signalled"),
    }
    result = await dev_env.client.get_workflow_handle(
        cart_journey["workflow_id"], result_type=EnrollmentResult
    ).result()
    assert result.status == "converted"
    await sink.wait_for(2, within=20)
    thanks = sink.messages[1]
    assert "o-1" in thanks.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    final = await eventually(
        lambda: statuses(database, contact_id),
        lambda found: (
            found.get("welcome_series") == "converted"
            and found.get("abandoned_cart") == "converted"
        ),
        within=20,
    )
    assert final["post_purchase"] == "active"
    async with database.session() as session:
        query = select(Enrollment).where(Enrollment.contact_id == contact_id)
        where = {row.journey: row.current_step for row in (await session.exec(query)).all()}
    # The list says where each one was when the order converted it.
    assert where["welcome_series"] == "pause_1"
    assert where["abandoned_cart"] == "grace_period"

    async def sent_messages() -> list[Message]:
        async with database.session() as session:
            query = select(Message).where(Message.contact_id == contact_id)
            return list((await session.exec(query)).all())

    # The SMTP call lands a moment before the row is marked sent.
    messages = await eventually(
        sent_messages,
        lambda rows: (
            sorted((m.step, m.status) for m in rows) == [("thank_you", "sent"), ("welcome", "sent")]
        ),
    )
    assert {m.provider_message_id for m in messages} == {
        welcome["Message-ID"],
        thanks["Message-ID"],
    }
    # Exactly two emails reached SMTP: no duplicate from the retried event.
    assert len(sink.to(address)) == 2
