"""GET /v1/contacts/{contact_id}/messages: newest first, keyset pages, every reason shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from persistence import Database, Message

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def store(database: Database, contact_id: str, n: int, **fields: Any) -> Message:
    """Message number `n` of the contact, created `n` minutes after T0 unless told."""
    values: dict[str, Any] = {
        "message_id": f"journey:welcome_series:{contact_id}:run:step_{n:02d}",
        "workflow_id": f"journey:welcome_series:{contact_id}",
        "run_id": "run",
        "journey": "welcome_series",
        "step": f"step_{n:02d}",
        "contact_id": contact_id,
        "channel": "email",
        "template": "welcome_series/topic",
        "status": "sent",
        "to_address": "ada@example.com",
        "subject": f"Topic {n}",
        "created_at": T0 + timedelta(minutes=n),
        "sent_at": T0 + timedelta(minutes=n, seconds=2),
    }
    message = Message(**(values | fields))
    async with database.session() as session:
        session.add(message)
        await session.commit()
    return message


def path(contact_id: str) -> str:
    return f"/v1/contacts/{contact_id}/messages"


async def all_pages(api: httpx.AsyncClient, contact_id: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        body = (await api.get(path(contact_id), params=params)).json()
        pages.append([m["step"] for m in body["messages"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_messages_newest_first_with_every_field_and_the_reason(
    api: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    await store(database, contact_id, 1)
    await store(
        database,
        contact_id,
        2,
        status="suppressed",
        reason="unsubscribed",
        to_address=None,
        subject=None,
        sent_at=None,
    )
    await store(database, f"{contact_id}-other", 3)  # someone else's

    response = await api.get(path(contact_id))

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert body["messages"] == [
        {
            "message_id": f"journey:welcome_series:{contact_id}:run:step_02",
            "workflow_id": f"journey:welcome_series:{contact_id}",
            "journey": "welcome_series",
            "step": "step_02",
            "channel": "email",
            "category": "marketing",
            "template": "welcome_series/topic",
            "status": "suppressed",
            "reason": "unsubscribed",
            "to_address": None,
            "subject": None,
            "created_at": "2026-03-01T09:02:00Z",
            "sent_at": None,
        },
        {
            "message_id": f"journey:welcome_series:{contact_id}:run:step_01",
            "workflow_id": f"journey:welcome_series:{contact_id}",
            "journey": "welcome_series",
            "step": "step_01",
            "channel": "email",
            "category": "marketing",
            "template": "welcome_series/topic",
            "status": "sent",
            "reason": None,
            "to_address": "ada@example.com",
            "subject": "Topic 1",
            "created_at": "2026-03-01T09:01:00Z",
            "sent_at": "2026-03-01T09:01:02Z",
        },
    ]


async def test_pages_follow_each_other_without_gaps_or_repeats(
    api: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    for n in range(1, 6):
        await store(database, contact_id, n)
    # Two messages of the same instant: the message id breaks the tie, across a page edge.
    await store(database, contact_id, 6, created_at=T0 + timedelta(minutes=3))

    pages = await all_pages(api, contact_id, limit=2)

    assert pages == [["step_05", "step_04"], ["step_06", "step_03"], ["step_02", "step_01"]]


async def test_a_page_is_stable_when_new_messages_arrive_meanwhile(
    api: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    for n in range(1, 5):
        await store(database, contact_id, n)
    first = (await api.get(path(contact_id), params={"limit": 2})).json()

    await store(database, contact_id, 9)  # newer than everything listed
    rest = (await api.get(path(contact_id), params={"cursor": first["next_cursor"]})).json()

    assert [m["step"] for m in first["messages"]] == ["step_04", "step_03"]
    assert [m["step"] for m in rest["messages"]] == ["step_02", "step_01"]
    assert rest["next_cursor"] is None


async def test_the_default_page_is_50(
    api: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    for n in range(51):
        await store(database, contact_id, n)
    body = (await api.get(path(contact_id))).json()
    assert len(body["messages"]) == 50
    assert body["next_cursor"] is not None


async def test_a_contact_without_messages_has_an_empty_list(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    assert (await api.get(path(contact_id))).json() == {"messages": [], "next_cursor": None}


async def test_messages_of_an_unknown_contact_are_404(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    response = await api.get(path(contact_id))
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown contact '{contact_id}'"}


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "bm90IGpzb24"}, "cursor"),  # base64 of "not json"
        ({"cursor": "WzEsIDJd"}, "cursor"),  # base64 of [1, 2]
        ({"cursor": "x" * 2001}, "cursor"),
    ],
)
async def test_bad_paging_parameters_are_422_naming_them(
    api: httpx.AsyncClient, contact_id: str, params: dict[str, Any], name: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    response = await api.get(path(contact_id), params=params)
    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [["query", name]]


async def test_the_largest_page_is_200(api: httpx.AsyncClient, contact_id: str) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    assert (await api.get(path(contact_id), params={"limit": 200})).status_code == 200
