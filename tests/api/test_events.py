"""POST /v1/events and /v1/events/batch: validation, idempotency, routing answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from persistence import Database, EventRecord
from tests.api.helpers import SentMessages, enrollment_rows, event, wait_for_rows


async def stored_event(database: Database, event_id: str) -> EventRecord | None:
    async with database.session() as session:
        return await session.get(EventRecord, event_id, populate_existing=True)


async def test_an_event_starts_its_journey_and_creates_a_bare_contact(
    api: httpx.AsyncClient, contact_id: str, sent: SentMessages
) -> None:
    body = event(contact_id, "signed_up")
    response = await api.post("/v1/events", json=body)
    assert response.status_code == 202
    assert response.json() == {
        "id": body["id"],
        "journeys": [
            {
                "journey": "welcome_series",
                "workflow_id": f"journey:welcome_series:{contact_id}",
                "action": "started",
                "reason": None,
            }
        ],
    }
    contact = await api.get(f"/v1/contacts/{contact_id}")
    assert contact.status_code == 200
    assert contact.json()["email"] is None
    [welcome] = await sent.settled(contact_id, 1)
    assert welcome.step == "welcome"
    assert welcome.trigger is not None and welcome.trigger.id == body["id"]


async def test_the_same_id_again_gets_the_same_answer_and_no_second_effect(
    api: httpx.AsyncClient,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
    sent: SentMessages,
) -> None:
    body = event(contact_id, "signed_up")
    first = await api.post("/v1/events", json=body)
    rows = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    await sent.settled(contact_id, 1)

    again = await api.post("/v1/events", json=body)
    # A retry that leaves occurred_at out matches the time the first attempt stored.
    without_time = await api.post("/v1/events", json={**body, "occurred_at": None})

    assert again.status_code == without_time.status_code == 202
    assert again.json() == without_time.json() == first.json()
    description = await dev_env.client.get_workflow_handle(rows[0].workflow_id).describe()
    assert description.run_id == rows[0].run_id
    assert len(await enrollment_rows(database, contact_id)) == 1
    assert len(sent.for_contact(contact_id)) == 1


async def test_the_same_id_with_a_different_body_is_409(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    body = event(contact_id, "page_viewed", path="/pricing")
    assert (await api.post("/v1/events", json=body)).status_code == 202
    for change in (
        {"name": "signed_up"},
        {"properties": {"path": "/about"}},
        {"contact_id": f"{contact_id}-other"},
        {"occurred_at": "2020-01-01T00:00:00Z"},
    ):
        response = await api.post("/v1/events", json={**body, **change})
        assert response.status_code == 409, change
        assert f"event id '{body['id']}' was already used" in response.json()["detail"]
    row = await stored_event(database, body["id"])
    assert row is not None and row.name == "page_viewed"
    # The conflicting body's contact was not created as a side effect.
    assert (await api.get(f"/v1/contacts/{contact_id}-other")).status_code == 404


async def test_an_event_stored_by_an_attempt_that_died_is_routed_on_retry(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    body = event(contact_id, "signed_up")
    async with database.session() as session:
        session.add(
            EventRecord(
                id=body["id"],
                contact_id=contact_id,
                name="signed_up",
                properties={},
                occurred_at=datetime.now(UTC),
            )
        )
        await session.commit()

    response = await api.post("/v1/events", json=body)

    assert response.status_code == 202
    assert [j["action"] for j in response.json()["journeys"]] == ["started"]
    row = await stored_event(database, body["id"])
    assert row is not None and row.routed_at is not None
    assert row.routing == [
        {
            "journey": "welcome_series",
            "workflow_id": f"journey:welcome_series:{contact_id}",
            "action": "started",
            "reason": None,
        }
    ]


async def test_an_event_without_id_gets_one_and_an_unrouted_name_is_stored(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    occurred = datetime(2024, 5, 1, 12, 30)  # naive: taken as UTC
    response = await api.post(
        "/v1/events",
        json={"contact_id": contact_id, "name": "page_viewed", "occurred_at": occurred.isoformat()},
    )
    assert response.status_code == 202
    event_id = response.json()["id"]
    assert uuid.UUID(event_id).version == 4
    assert response.json()["journeys"] == []
    row = await stored_event(database, event_id)
    assert row is not None
    assert row.occurred_at.replace(tzinfo=row.occurred_at.tzinfo or UTC) == occurred.replace(
        tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "signed up"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"contact_id": ""}, "contact_id"),
        ({"contact_id": "a:b"}, "contact_id"),
        ({"id": "has space"}, "id"),
        ({"properties": ["not", "an", "object"]}, "properties"),
        ({"properties": {"blob": "x" * 70_000}}, "properties"),
        ({"occurred_at": "yesterday-ish"}, "occurred_at"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "occurred_at"),
        ({"colour": "blue"}, "colour"),
        # Events only Journeyman emits: posting one would fake the change behind it.
        ({"name": "unsubscribed"}, "name"),
        ({"name": "email.clicked"}, "name"),
        ({"name": "lead.qualified"}, "name"),
        ({"name": "lifecycle.customer"}, "name"),
    ],
)
async def test_invalid_events_are_422_and_not_stored(
    api: httpx.AsyncClient,
    contact_id: str,
    database: Database,
    change: dict[str, Any],
    field: str,
) -> None:
    body = {**event(contact_id, "signed_up"), **change}
    response = await api.post("/v1/events", json=body)
    assert response.status_code == 422
    assert [problem["loc"][-1] for problem in response.json()["detail"]] == [field]
    if isinstance(body.get("id"), str):
        assert await stored_event(database, body["id"]) is None


@pytest.mark.parametrize(
    "content", [b'{"contact_id": "c-1", "name": ', b"[1, 2]", b"null", b"", b"\xff\xfe"]
)
async def test_malformed_bodies_are_422_never_500(api: httpx.AsyncClient, content: bytes) -> None:
    response = await api.post(
        "/v1/events", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_a_batch_answers_each_event_in_order(
    api: httpx.AsyncClient, database: Database
) -> None:
    ada, bob = f"c-{uuid.uuid4().hex[:12]}", f"c-{uuid.uuid4().hex[:12]}"
    reused = event(ada, "page_viewed")
    assert (await api.post("/v1/events", json=reused)).status_code == 202
    batch = [
        event(ada, "signed_up"),
        {**reused, "name": "cart_viewed"},  # same id, different event
        event(bob, "signed_up"),
        reused,  # a plain retry
        event(bob, "post_purchase_survey"),
    ]

    response = await api.post("/v1/events/batch", json={"events": batch})

    assert response.status_code == 202
    results = response.json()["results"]
    assert [(r["index"], r["status"], r["id"]) for r in results] == [
        (0, "accepted", batch[0]["id"]),
        (1, "conflict", reused["id"]),
        (2, "accepted", batch[2]["id"]),
        (3, "accepted", reused["id"]),
        (4, "accepted", batch[4]["id"]),
    ]
    assert [j["workflow_id"] for j in results[0]["journeys"]] == [f"journey:welcome_series:{ada}"]
    assert "already used" in results[1]["detail"]
    assert [j["action"] for j in results[2]["journeys"]] == ["started"]
    assert results[3]["journeys"] == results[4]["journeys"] == []
    async with database.session() as session:
        ids = (
            await session.exec(
                select(EventRecord.id).where(col(EventRecord.contact_id).in_([ada, bob]))
            )
        ).all()
    assert sorted(ids) == sorted({b["id"] for b in batch})


async def test_a_batch_with_one_invalid_event_is_422_and_stores_nothing(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    good = event(contact_id, "signed_up")
    response = await api.post(
        "/v1/events/batch", json={"events": [good, {**event(contact_id, ""), "name": ""}]}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 1, "name"]
    assert await stored_event(database, good["id"]) is None


@pytest.mark.parametrize("count", [0, 1001])
async def test_a_batch_must_hold_1_to_1000_events(api: httpx.AsyncClient, count: int) -> None:
    events = [event(f"c-{n}", "page_viewed") for n in range(count)]
    response = await api.post("/v1/events/batch", json={"events": events})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events"]
