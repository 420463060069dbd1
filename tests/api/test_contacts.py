"""PUT and GET /v1/contacts/{contact_id}."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import col, update

from persistence import Contact, Database


async def test_put_creates_then_updates_only_the_fields_given(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    created = await api.put(
        f"/v1/contacts/{contact_id}",
        json={
            "email": "ada@example.com",
            "phone": "+44 20 7946 0958",
            "timezone": "Europe/London",
            "locale": "en-GB",
            "attributes": {"interests": ["hiking"], "plan": "free"},
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert body["contact_id"] == contact_id
    assert body["timezone"] == "Europe/London"
    assert body["created_at"].endswith("Z")

    updated = await api.put(
        f"/v1/contacts/{contact_id}",
        json={"locale": "fr-FR", "phone": None, "attributes": {"plan": "pro"}},
    )
    assert updated.status_code == 200
    read = (await api.get(f"/v1/contacts/{contact_id}")).json()
    assert read["email"] == "ada@example.com"  # left out: kept
    assert read["locale"] == "fr-FR"
    assert read["phone"] is None  # null: cleared
    assert read["attributes"] == {"plan": "pro"}  # replaced, not merged
    assert read["created_at"] == body["created_at"]
    assert read["updated_at"] > body["updated_at"]


async def test_unknown_contact_is_404(api: httpx.AsyncClient, contact_id: str) -> None:
    response = await api.get(f"/v1/contacts/{contact_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown contact '{contact_id}'"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "+02:00"}, "timezone"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "a\u0000b@example.com"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"locale": "english please"}, "locale"),
        ({"attributes": None}, "attributes"),
        ({"attributes": ["not", "an", "object"]}, "attributes"),
        ({"attributes": {"blob": "x" * 70_000}}, "attributes"),
        ({"nickname": "Ada"}, "nickname"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    api: httpx.AsyncClient, contact_id: str, body: dict[str, object], field: str
) -> None:
    response = await api.put(f"/v1/contacts/{contact_id}", json=body)
    assert response.status_code == 422
    assert [problem["loc"][-1] for problem in response.json()["detail"]] == [field]
    assert (await api.get(f"/v1/contacts/{contact_id}")).status_code == 404  # nothing written


async def test_nan_in_attributes_is_422_not_a_database_error(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    response = await api.put(
        f"/v1/contacts/{contact_id}",
        content=b'{"attributes": {"score": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "NaN" in response.text


@pytest.mark.parametrize("bad_id", ["a:b", "with space", "x" * 201])
async def test_contact_ids_that_would_break_workflow_ids_are_422(
    api: httpx.AsyncClient, bad_id: str
) -> None:
    response = await api.put(f"/v1/contacts/{bad_id}", json={})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "contact_id"]


async def test_malformed_json_is_422_not_500(api: httpx.AsyncClient, contact_id: str) -> None:
    response = await api.put(
        f"/v1/contacts/{contact_id}",
        content=b'{"email": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_a_new_address_lifts_a_hard_bounce_suppression_and_the_same_one_does_not(
    api: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "old@example.com"})
    async with database.session() as session:
        await session.exec(
            update(Contact)
            .where(col(Contact.contact_id) == contact_id)
            .values(email_suppressed="hard_bounce")
        )
        await session.commit()

    async def suppression() -> str | None:
        async with database.session() as session:
            contact = await session.get(Contact, contact_id, populate_existing=True)
            assert contact is not None
            return contact.email_suppressed

    await api.put(f"/v1/contacts/{contact_id}", json={"email": "old@example.com"})
    assert await suppression() == "hard_bounce"
    await api.put(f"/v1/contacts/{contact_id}", json={"locale": "it-IT"})
    assert await suppression() == "hard_bounce"
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "new@example.com"})
    assert await suppression() is None
