"""POST /v1/events/batch stores and routes a batch as a batch: a bounded number of database
statements whatever its size, duplicates and conflicts answered per item, each contact's events
routed in the order given, dormant contacts woken."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event as sa_event
from sqlmodel import col, select

from persistence import Contact, Database, EventRecord
from tests.api.helpers import API_KEY, SentMessages, event


@pytest.fixture
async def api_without_worker(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no worker on its task queue: every statement on the engine during a call
    is the intake's own (a worker would write enrollment rows meanwhile)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    """Every statement the engine sends to the database inside the block."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))  # (conn, cursor, statement, parameters, ...)

    sa_event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa_event.remove(database.engine.sync_engine, "before_cursor_execute", count)


def fresh_contacts(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"c-{tag}-{n}" for n in range(count)]


async def test_the_statements_of_a_batch_do_not_grow_with_its_size(
    api_without_worker: httpx.AsyncClient, database: Database
) -> None:
    counts = []
    for size in (3, 120):
        batch = [event(contact_id, "signed_up") for contact_id in fresh_contacts(size)]
        with counted_statements(database) as statements:
            response = await api_without_worker.post("/v1/events/batch", json={"events": batch})
        assert response.status_code == 202
        results = response.json()["results"]
        assert [r["journeys"][0]["action"] for r in results] == ["started"] * size
        counts.append(len(statements))
    # Insert the events, upsert their contacts, read the enrollments routing needs, record
    # the answers; per-event statements would make the second count 40 times the first.
    assert counts[0] == counts[1], counts
    assert counts[1] <= 6, counts


async def test_a_retried_batch_reads_its_stored_answers_in_one_more_statement(
    api_without_worker: httpx.AsyncClient, database: Database
) -> None:
    batch = [event(contact_id, "signed_up") for contact_id in fresh_contacts(50)]
    first = await api_without_worker.post("/v1/events/batch", json={"events": batch})

    with counted_statements(database) as statements:
        again = await api_without_worker.post("/v1/events/batch", json={"events": batch})

    assert again.json() == first.json()
    # The insert finds every id taken and one select reads them, answers included: nothing
    # is routed or recorded again.
    assert len(statements) <= 4, statements


async def test_duplicates_and_conflicts_within_a_batch_are_answered_per_item(
    api: httpx.AsyncClient, database: Database, sent: SentMessages
) -> None:
    ada, bob = fresh_contacts(2)
    signup = event(ada, "signed_up")
    batch = [
        signup,
        {**signup, "properties": {"plan": "pro"}},  # the same id for a different event
        event(bob, "signed_up"),
        signup,  # the same event again
    ]

    response = await api.post("/v1/events/batch", json={"events": batch})

    assert response.status_code == 202
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "accepted"),
        (1, "conflict"),
        (2, "accepted"),
        (3, "accepted"),
    ]
    assert "properties differ" in results[1]["detail"]
    started = {
        "journey": "welcome_series",
        "workflow_id": f"journey:welcome_series:{ada}",
        "action": "started",
        "reason": None,
    }
    # Routed once: the repeat gets the first answer, not a "skipped: reentry_never".
    assert results[0]["journeys"] == results[3]["journeys"] == [started]
    async with database.session() as session:
        row = await session.get(EventRecord, signup["id"], populate_existing=True)
    assert row is not None and row.properties == {} and row.routing == [started]
    await sent.settled(ada, 1)
    await sent.settled(bob, 1)


async def test_each_contacts_events_are_routed_in_the_order_given(
    api: httpx.AsyncClient, sent: SentMessages
) -> None:
    contacts = fresh_contacts(24)
    # Per contact: the signup starts welcome_series, and the order that follows reaches it
    # (its goal) only if routed after the start. Contacts interleave, as a backend sends them.
    batch = [event(c, "signed_up") for c in contacts] + [
        event(c, "order_placed", order_id=f"o-{c}") for c in contacts
    ]

    response = await api.post("/v1/events/batch", json={"events": batch})

    results = response.json()["results"]
    for contact_id, result in zip(contacts, results[len(contacts) :], strict=True):
        reached = {(j["journey"], j["action"]) for j in result["journeys"]}
        assert ("welcome_series", "signalled") in reached, (contact_id, result)
        assert ("post_purchase", "started") in reached


async def test_a_batch_wakes_dormant_contacts_and_creates_new_ones(
    api_without_worker: httpx.AsyncClient, database: Database
) -> None:
    dormant, still_dormant, new = fresh_contacts(3)
    since = datetime.now(UTC) - timedelta(days=1)
    async with database.session() as session:
        for contact_id in (dormant, still_dormant):
            session.add(Contact(contact_id=contact_id, dormant_at=since))
        await session.commit()
    batch = [
        # Before the contact went dormant (a late upload): wakes nobody.
        {
            **event(still_dormant, "page_viewed"),
            "occurred_at": (since - timedelta(hours=1)).isoformat(),
        },
        {**event(dormant, "page_viewed"), "occurred_at": (since - timedelta(hours=1)).isoformat()},
        event(dormant, "page_viewed"),
        event(new, "page_viewed"),
    ]

    response = await api_without_worker.post("/v1/events/batch", json={"events": batch})

    assert response.status_code == 202
    async with database.session() as session:
        rows = (
            await session.exec(
                select(Contact).where(col(Contact.contact_id).in_([dormant, still_dormant, new]))
            )
        ).all()
    dormant_at = {row.contact_id: row.dormant_at for row in rows}
    assert dormant_at[dormant] is None
    assert dormant_at[still_dormant] is not None
    assert new in dormant_at and dormant_at[new] is None


async def test_concurrent_single_events_are_stored_together_and_each_answered(
    api_without_worker: httpx.AsyncClient, database: Database
) -> None:
    bodies = [event(contact_id, "signed_up") for contact_id in fresh_contacts(20)]
    retry = bodies[1]
    clash = {**bodies[2], "properties": {"plan": "pro"}}

    with counted_statements(database) as statements:
        responses = await asyncio.gather(
            *(api_without_worker.post("/v1/events", json=b) for b in [*bodies, retry, clash])
        )

    by_status = sorted(r.status_code for r in responses)
    # The clash and the event whose id it reuses: one stored, the other refused, whichever
    # came first.
    assert by_status == [202] * 21 + [409], by_status
    for body, response in zip([*bodies, retry], responses, strict=False):
        if response.status_code == 202:
            assert response.json()["id"] == body["id"]
            [routed] = response.json()["journeys"]
            assert (routed["journey"], routed["action"]) == ("welcome_series", "started")
    # Stored in groups, not a transaction per request (4 statements each).
    assert len(statements) < 4 * len(responses), len(statements)
