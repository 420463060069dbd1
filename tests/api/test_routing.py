"""Routing from the static catalog: keyed enrollments, goals, and what is not signalled."""

from __future__ import annotations

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from persistence import Database
from tests.api.helpers import event, parked_in, result_of, wait_for_rows
from workflows import catalog
from workflows.contracts import JOURNEY_NAME, STATE_QUERY, EnrollmentState
from workflows.welcome_series import WelcomeSeries


def cart(contact_id: str, cart_id: str) -> str:
    return f"journey:abandoned_cart:{contact_id}:{cart_id}"


def routed(response: httpx.Response) -> list[tuple[str, str | None, str]]:
    return [(j["journey"], j["workflow_id"], j["action"]) for j in response.json()["journeys"]]


async def state_of(client: Client, workflow_id: str) -> EnrollmentState:
    state: EnrollmentState = await client.get_workflow_handle(workflow_id).query(
        STATE_QUERY, result_type=EnrollmentState
    )
    return state


async def test_an_order_converts_only_the_cart_it_names(
    api: httpx.AsyncClient, contact_id: str, dev_env: WorkflowEnvironment
) -> None:
    client = dev_env.client
    abandoned = await api.post(
        "/v1/events",
        json=event(contact_id, "cart_abandoned", cart_id="cart-a", items=[{"sku": "boot"}]),
    )
    assert abandoned.json()["journeys"] == [
        {
            "journey": "abandoned_cart",
            "workflow_id": cart(contact_id, "cart-a"),
            "action": "started",
            "reason": None,
        }
    ]
    description = await client.get_workflow_handle(cart(contact_id, "cart-a")).describe()
    version = catalog.get("abandoned_cart").version
    assert (
        await description.static_summary()
        == f"abandoned_cart v{version} for {contact_id} (cart cart-a)"
    )
    assert description.typed_search_attributes.get(JOURNEY_NAME) == "abandoned_cart"

    other_order = await api.post(
        "/v1/events",
        json=event(contact_id, "order_placed", cart_id="cart-b", order_id="o-1"),
    )
    # The order starts post_purchase; cart-a is not signalled (another cart) and there is
    # no enrollment for cart-b or in welcome_series to signal.
    assert other_order.json()["journeys"] == [
        {
            "journey": "post_purchase",
            "workflow_id": f"journey:post_purchase:{contact_id}:o-1",
            "action": "started",
            "reason": None,
        }
    ]
    assert (await state_of(client, cart(contact_id, "cart-a"))).status == "active"

    same_order = await api.post(
        "/v1/events",
        json=event(contact_id, "order_placed", cart_id="cart-a", order_id="o-2"),
    )
    assert {
        (j["journey"], j["workflow_id"], j["action"]) for j in same_order.json()["journeys"]
    } == {
        ("post_purchase", f"journey:post_purchase:{contact_id}:o-2", "started"),
        ("abandoned_cart", cart(contact_id, "cart-a"), "signalled"),
    }
    result = await result_of(client, cart(contact_id, "cart-a"))
    assert (result.status, result.ended_by) == ("converted", "event:order_placed")


async def test_an_order_without_a_cart_reaches_every_running_cart_of_the_contact(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    for cart_id in ("cart-a", "cart-b"):
        await api.post("/v1/events", json=event(contact_id, "cart_abandoned", cart_id=cart_id))
    # Without the key, the running carts are found from the lifecycle rows.
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)

    order = await api.post("/v1/events", json=event(contact_id, "order_placed", order_id="o-9"))

    signalled = [j["workflow_id"] for j in order.json()["journeys"] if j["action"] == "signalled"]
    assert sorted(signalled) == [cart(contact_id, "cart-a"), cart(contact_id, "cart-b")]
    for cart_id in ("cart-a", "cart-b"):
        assert (await result_of(dev_env.client, cart(contact_id, cart_id))).status == "converted"


async def test_a_keyed_journey_without_its_key_is_skipped_with_the_reason(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    response = await api.post("/v1/events", json=event(contact_id, "order_placed", total=12))
    assert response.json()["journeys"] == [
        {
            "journey": "post_purchase",
            "workflow_id": None,
            "action": "skipped",
            "reason": "missing_key:order_id",
        }
    ]


async def test_goal_of_a_running_unkeyed_journey_is_signalled_and_converts_it(
    api: httpx.AsyncClient, contact_id: str, dev_env: WorkflowEnvironment
) -> None:
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, f"journey:welcome_series:{contact_id}", "pause_1")
    order = await api.post("/v1/events", json=event(contact_id, "order_placed", order_id="o-1"))
    assert ("welcome_series", f"journey:welcome_series:{contact_id}", "signalled") in routed(order)
    result = await result_of(dev_env.client, f"journey:welcome_series:{contact_id}")
    assert (result.status, result.ended_by) == ("converted", "event:order_placed")


@pytest.mark.parametrize(("reentry", "start_signals"), [("never", 0), ("after_exit", 1)])
async def test_an_enrollment_is_not_signalled_again_by_the_event_that_started_it(
    api: httpx.AsyncClient,
    contact_id: str,
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    reentry: str,
    start_signals: int,
) -> None:
    # A journey that also waits for its own trigger event is both started and "listening".
    monkeypatch.setattr(WelcomeSeries, "waits_for", ("signed_up",))
    monkeypatch.setattr(WelcomeSeries, "reentry", reentry)
    response = await api.post("/v1/events", json=event(contact_id, "signed_up"))
    assert [(j["journey"], j["action"]) for j in response.json()["journeys"]] == [
        ("welcome_series", "started")
    ]
    history = await dev_env.client.get_workflow_handle(
        f"journey:welcome_series:{contact_id}"
    ).fetch_history()
    signals = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    # `never` starts without a signal (the trigger travels in the input); the others with
    # signal-with-start. Either way routing adds none.
    assert len(signals) == start_signals
