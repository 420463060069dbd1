"""A contact's enrollments: listing with live state, and the operator's exit."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from temporalio.testing import WorkflowEnvironment

from persistence import Database, Enrollment
from tests.api.helpers import event, parked_in, result_of, wait_for_rows


def welcome(contact_id: str) -> str:
    return f"journey:welcome_series:{contact_id}"


async def test_listing_shows_live_state_of_running_enrollments(
    api: httpx.AsyncClient, contact_id: str, dev_env: WorkflowEnvironment, database: Database
) -> None:
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, welcome(contact_id), "pause_1")
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)

    [listed] = (await api.get(f"/v1/contacts/{contact_id}/journeys")).json()

    assert listed["workflow_id"] == welcome(contact_id)
    assert (listed["journey"], listed["version"], listed["key"]) == ("welcome_series", 1, None)
    assert (listed["status"], listed["source"]) == ("active", "live")
    assert listed["current_step"] == "pause_1"
    assert listed["wait_until"] is not None
    assert [(s["name"], s["kind"], s["outcome"]) for s in listed["steps"]] == [
        ("welcome", "send", "sent")
    ]


async def test_listing_falls_back_to_the_database_when_a_run_cannot_be_asked(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    async with database.session() as session:
        session.add(
            Enrollment(
                run_id=f"run-{contact_id}",
                workflow_id=f"journey:gone:{contact_id}",
                journey="gone",
                version=1,
                contact_id=contact_id,
                current_step="somewhere",
                entered_at=datetime.now(UTC),
            )
        )
        await session.commit()

    [listed] = (await api.get(f"/v1/contacts/{contact_id}/journeys")).json()

    assert (listed["status"], listed["source"], listed["current_step"]) == (
        "active",
        "database",
        "somewhere",
    )


async def test_listing_an_unknown_contact_is_404(api: httpx.AsyncClient, contact_id: str) -> None:
    response = await api.get(f"/v1/contacts/{contact_id}/journeys")
    assert response.status_code == 404


async def test_exit_ends_the_running_enrollment_with_the_reason(
    api: httpx.AsyncClient, contact_id: str, dev_env: WorkflowEnvironment, database: Database
) -> None:
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, welcome(contact_id), "pause_1")
    path = f"/v1/contacts/{contact_id}/journeys/welcome_series/exit"

    response = await api.post(path, json={"reason": "support ticket 42"})

    assert response.status_code == 200
    assert response.json() == {
        "journey": "welcome_series",
        "contact_id": contact_id,
        "exited": [welcome(contact_id)],
    }
    result = await result_of(dev_env.client, welcome(contact_id))
    assert (result.status, result.ended_by) == ("exited", "support ticket 42")
    await wait_for_rows(database, contact_id, lambda rows: rows[0].status == "exited")
    [listed] = (await api.get(f"/v1/contacts/{contact_id}/journeys")).json()
    assert (listed["status"], listed["source"]) == ("exited", "database")
    assert listed["ended_by"] == "support ticket 42"

    again = await api.post(path, json={})
    assert again.status_code == 404
    assert "no running enrollment" in again.json()["detail"]


async def test_exit_of_a_keyed_journey_by_key_or_all_of_them(
    api: httpx.AsyncClient, contact_id: str, dev_env: WorkflowEnvironment, database: Database
) -> None:
    for cart_id in ("cart-a", "cart-b", "cart-c"):
        await api.post("/v1/events", json=event(contact_id, "cart_abandoned", cart_id=cart_id))
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 3)
    path = f"/v1/contacts/{contact_id}/journeys/abandoned_cart/exit"
    carts = {c: f"journey:abandoned_cart:{contact_id}:{c}" for c in ("cart-a", "cart-b", "cart-c")}

    one = await api.post(path, json={"key": "cart-a"})
    assert one.json()["exited"] == [carts["cart-a"]]
    await result_of(dev_env.client, carts["cart-a"])
    await wait_for_rows(database, contact_id, lambda rows: _active(rows) == 2)

    rest = await api.post(path, json={})
    assert sorted(rest.json()["exited"]) == [carts["cart-b"], carts["cart-c"]]
    for cart_id in ("cart-b", "cart-c"):
        assert (await result_of(dev_env.client, carts[cart_id])).status == "exited"


def _active(rows: list[Enrollment]) -> int:
    return sum(row.status == "active" for row in rows)


async def test_exit_of_an_unknown_journey_or_invalid_body(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    unknown = await api.post(f"/v1/contacts/{contact_id}/journeys/nope/exit", json={})
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("unknown journey 'nope'")
    bad = await api.post(
        f"/v1/contacts/{contact_id}/journeys/welcome_series/exit", json={"reason": "\u0000"}
    )
    assert bad.status_code == 422
