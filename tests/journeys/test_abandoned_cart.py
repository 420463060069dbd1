"""abandoned_cart v2, every branch, in simulated time: reminders, the A/B/holdout test of the
second reminder, and the SMS fallback."""

import itertools
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from workflows.abandoned_cart import AbandonedCart
from workflows.splits import assign_variant

CART = {
    "cart_id": "cart-7",
    "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    "cart_url": "https://shop.example/cart/cart-7",
    "coupon": "COMEBACK10",
}


def contact_in(variant: str) -> str:
    """A contact id the split assigns to `variant` (the split is a pure function)."""
    for n in itertools.count():
        contact_id = f"c-{variant}-{n}"
        drawn = assign_variant(
            contact_id, "abandoned_cart", "second_reminder_test", {"A": 50, "B": 50}, 10
        )
        if drawn == variant:
            return contact_id
    raise AssertionError("unreachable")


async def test_variant_a_gets_two_reminders_the_second_with_the_coupon(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env, AbandonedCart, trigger_properties=CART, contact_id=contact_in("A")
    ) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.step, s.after, s.channel) for s in run.capture.sends] == [
        ("first_reminder", timedelta(hours=1), "email"),
        ("second_reminder", timedelta(hours=25), "email"),
    ]
    assert "coupon" not in run.capture.sends[0].context
    assert run.capture.sends[1].context["coupon"] == "COMEBACK10"
    assert run.capture.sends[1].context["items"] == CART["items"]
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["second_reminder_test"] == "variant A"
    ended = run.capture.lifecycle[-1]
    assert abs(ended.at - run.capture.lifecycle[0].at - timedelta(hours=73)) < timedelta(seconds=1)


async def test_variant_b_gets_the_second_reminder_without_coupon(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env, AbandonedCart, trigger_properties=CART, contact_id=contact_in("B")
    ) as run:
        await run.result()

    assert [s.step for s in run.capture.sends] == ["first_reminder", "second_reminder"]
    assert "coupon" not in run.capture.sends[1].context


async def test_holdout_gets_no_second_reminder_but_its_order_still_converts(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env, AbandonedCart, trigger_properties=CART, contact_id=contact_in("holdout")
    ) as run:
        await run.advance(timedelta(hours=30))
        state = await run.state()
        await run.event("order_placed", cart_id="cart-7")
        result = await run.result()

    assert [s.step for s in run.capture.sends] == ["first_reminder"]
    assert state.variants == {"second_reminder_test": "holdout"}
    assert result.status == "converted"


@pytest.mark.parametrize(
    ("consent", "phone", "channel"),
    [
        ({"email": False, "sms": True}, "+393331234567", "sms"),
        ({"email": True, "sms": True}, "+393331234567", "email"),
        ({"email": False, "sms": False}, "+393331234567", "email"),
        ({"email": False, "sms": True}, None, "email"),
    ],
)
async def test_second_reminder_goes_by_sms_only_to_sms_only_contacts(
    time_env: WorkflowEnvironment, consent: dict[str, bool], phone: str | None, channel: str
) -> None:
    async with enrolled(
        time_env,
        AbandonedCart,
        trigger_properties=CART,
        contact_id=contact_in("B"),
        contact={"consent": consent, "phone": phone},
    ) as run:
        await run.result()

    assert run.capture.sends[-1].step == "second_reminder"
    assert run.capture.sends[-1].channel == channel


async def test_order_within_the_hour_converts_without_any_message(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(minutes=40))
        await run.event("order_placed", cart_id="cart-7", order_id="o-1")
        result = await run.result()

    assert result.status == "converted"
    assert run.capture.sends == []


async def test_order_for_another_cart_does_not_end_it(time_env: WorkflowEnvironment) -> None:
    async with enrolled(
        time_env, AbandonedCart, trigger_properties=CART, contact_id=contact_in("A")
    ) as run:
        await run.advance(timedelta(minutes=30))
        await run.event("order_placed", cart_id="cart-99")
        result = await run.result()

    assert result.status == "completed"
    assert [s.step for s in run.capture.sends] == ["first_reminder", "second_reminder"]


async def test_unsubscribe_exits_at_once(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(hours=2))
        await run.event("unsubscribed", channel="email")
        result = await run.result()

    assert result.status == "exited"
    assert [s.step for s in run.capture.sends] == ["first_reminder"]
