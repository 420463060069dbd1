"""Consent through the API: PUT /v1/contacts/{id}/subscriptions, and `subscriptions` on contacts.

Every change records an `unsubscribed` or `subscribed` event, routed like any event.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from persistence import Database, EventRecord
from tests.api.helpers import API_KEY, event, parked_in, result_of, wait_for_rows

ALL_SUBSCRIBED = {"email": True, "sms": True, "push": True}
# Nothing listens on port 1: connections are refused at once.
NOWHERE = "127.0.0.1:1"


async def consent_events(database: Database, contact_id: str) -> list[EventRecord]:
    query = (
        select(EventRecord)
        .where(
            col(EventRecord.contact_id) == contact_id,
            col(EventRecord.name).in_(["subscribed", "unsubscribed"]),
        )
        .order_by(col(EventRecord.occurred_at))
    )
    async with database.session() as session:
        return list((await session.exec(query)).all())


def subscriptions(contact_id: str) -> str:
    return f"/v1/contacts/{contact_id}/subscriptions"


async def test_contacts_show_their_subscriptions_all_true_by_default(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    created = await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
    read = await api.get(f"/v1/contacts/{contact_id}")
    for response in (created, read):
        assert response.json()["subscriptions"] == ALL_SUBSCRIBED
        assert response.json()["consent_updated_at"] is None


async def test_an_unsubscribe_is_recorded_once_as_an_event_and_a_resubscribe_too(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})

    off = await api.put(subscriptions(contact_id), json={"email": False})
    repeated = await api.put(subscriptions(contact_id), json={"email": False})

    assert off.status_code == 200
    body = off.json()
    assert body["subscriptions"] == {**ALL_SUBSCRIBED, "email": False}
    assert body["consent_updated_at"].endswith("Z")
    [recorded] = body["events"]
    assert (recorded["name"], recorded["channel"], recorded["journeys"]) == (
        "unsubscribed",
        "email",
        [],  # the contact is in no journey
    )
    assert repeated.json()["events"] == []  # nothing changed, nothing recorded
    assert repeated.json()["consent_updated_at"] == body["consent_updated_at"]
    [stored] = await consent_events(database, contact_id)
    assert stored.id == recorded["id"]
    assert stored.properties == {"channel": "email", "source": "api"}
    assert stored.routed_at is not None and stored.routing == []

    on = await api.put(subscriptions(contact_id), json={"email": True, "sms": True})

    assert on.json()["subscriptions"] == ALL_SUBSCRIBED
    assert [(e["name"], e["channel"]) for e in on.json()["events"]] == [("subscribed", "email")]
    names = [(e.name, e.properties["channel"]) for e in await consent_events(database, contact_id)]
    assert names == [("unsubscribed", "email"), ("subscribed", "email")]
    read = await api.get(f"/v1/contacts/{contact_id}")
    assert read.json()["subscriptions"] == ALL_SUBSCRIBED


async def test_several_channels_at_once_record_one_event_each(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    response = await api.put(subscriptions(contact_id), json={"sms": False, "push": False})
    assert response.json()["subscriptions"] == {"email": True, "sms": False, "push": False}
    assert sorted(e["channel"] for e in response.json()["events"]) == ["push", "sms"]
    assert len({e["id"] for e in response.json()["events"]}) == 2
    assert len(await consent_events(database, contact_id)) == 2


async def test_unsubscribing_ends_every_journey_that_exits_on_it(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    welcome = f"journey:welcome_series:{contact_id}"
    cart = f"journey:abandoned_cart:{contact_id}:cart-7"
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await api.post("/v1/events", json=event(contact_id, "cart_abandoned", cart_id="cart-7"))
    await parked_in(dev_env.client, welcome, "pause_1")
    await parked_in(dev_env.client, cart, "grace_period")
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)

    response = await api.put(subscriptions(contact_id), json={"email": False})

    [recorded] = response.json()["events"]
    assert sorted((j["journey"], j["workflow_id"], j["action"]) for j in recorded["journeys"]) == [
        ("abandoned_cart", cart, "signalled"),
        ("welcome_series", welcome, "signalled"),
    ]
    for workflow_id in (welcome, cart):
        result = await result_of(dev_env.client, workflow_id)
        assert (result.status, result.ended_by) == ("exited", "event:unsubscribed")


async def test_concurrent_identical_requests_record_one_event(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    responses = await asyncio.gather(
        *(api.put(subscriptions(contact_id), json={"email": False}) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {200}
    # One change, one event; a request that finds it still unrouted may route it too
    # (harmless: same id) and then lists it.
    assert len({e["id"] for r in responses for e in r.json()["events"]}) == 1
    assert len(await consent_events(database, contact_id)) == 1


async def test_a_change_whose_routing_failed_is_routed_by_the_retry(
    api: httpx.AsyncClient,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
    settings: Settings,
) -> None:
    welcome = f"journey:welcome_series:{contact_id}"
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, welcome, "pause_1")
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    cut_off = create_app(
        settings.model_copy(update={"temporal_address": NOWHERE}), database=database
    )
    async with (
        cut_off.router.lifespan_context(cut_off),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=cut_off),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as unreachable,
    ):
        failed = await unreachable.put(subscriptions(contact_id), json={"email": False})
    assert failed.status_code == 503
    [stored] = await consent_events(database, contact_id)
    assert stored.routed_at is None  # the change holds; its event waits to be routed

    retried = await api.put(subscriptions(contact_id), json={"email": False})

    [routed] = retried.json()["events"]
    assert routed["id"] == stored.id  # the same event, not a second one
    assert [j["action"] for j in routed["journeys"]] == ["signalled"]
    assert (await result_of(dev_env.client, welcome)).status == "exited"
    assert len(await consent_events(database, contact_id)) == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "body"),
        ({"fax": False}, "fax"),
        ({"email": False, "webhook": False}, "webhook"),
        ({"email": None}, "email"),
        ({"email": "no"}, "email"),
        ({"email": 0}, "email"),
        ([], "body"),
    ],
)
async def test_invalid_subscription_bodies_are_422_and_change_nothing(
    api: httpx.AsyncClient, contact_id: str, database: Database, body: Any, where: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    response = await api.put(subscriptions(contact_id), json=body)
    assert response.status_code == 422
    assert [problem["loc"][-1] for problem in response.json()["detail"]] == [where]
    assert (await api.get(f"/v1/contacts/{contact_id}")).json()["subscriptions"] == ALL_SUBSCRIBED
    assert await consent_events(database, contact_id) == []


async def test_subscriptions_of_an_unknown_contact_are_404(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    response = await api.put(subscriptions(contact_id), json={"email": False})
    assert response.status_code == 404
    assert response.json() == {"detail": f"unknown contact '{contact_id}'"}
    assert (await api.get(f"/v1/contacts/{contact_id}")).status_code == 404  # not created


async def test_a_new_contact_starts_with_the_consent_given_and_no_event(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    created = await api.put(
        f"/v1/contacts/{contact_id}",
        json={"email": "ada@example.com", "subscriptions": {"email": False}},
    )
    assert created.status_code == 201
    assert created.json()["subscriptions"] == {**ALL_SUBSCRIBED, "email": False}
    # Never subscribed, so never unsubscribed: there was no change to record.
    assert await consent_events(database, contact_id) == []


async def test_put_contact_with_subscriptions_changes_an_existing_one_like_the_subroute(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    updated = await api.put(
        f"/v1/contacts/{contact_id}",
        json={"locale": "fr-FR", "subscriptions": {"sms": False}},
    )
    assert updated.status_code == 200
    assert updated.json()["locale"] == "fr-FR"
    assert updated.json()["subscriptions"] == {**ALL_SUBSCRIBED, "sms": False}
    [stored] = await consent_events(database, contact_id)
    assert (stored.name, stored.properties) == ("unsubscribed", {"channel": "sms", "source": "api"})


@pytest.mark.parametrize("subscriptions_in", [None, {}, {"fax": True}, {"email": "yes"}])
async def test_put_contact_refuses_bad_subscriptions(
    api: httpx.AsyncClient, contact_id: str, subscriptions_in: Any
) -> None:
    response = await api.put(f"/v1/contacts/{contact_id}", json={"subscriptions": subscriptions_in})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "subscriptions"]
    assert (await api.get(f"/v1/contacts/{contact_id}")).status_code == 404
