"""abandoned_cart v1 (frozen, for enrollments that started on it), every branch."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from workflows.abandoned_cart_v1 import AbandonedCartV1 as AbandonedCart

CART = {
    "cart_id": "cart-7",
    "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    "cart_url": "https://shop.example/cart/cart-7",
}


async def test_no_order_gets_two_reminders_then_ends(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.step, s.after) for s in run.capture.sends] == [
        ("first_reminder", timedelta(hours=1)),
        ("second_reminder", timedelta(hours=25)),
    ]
    assert run.capture.templates == ["abandoned_cart/reminder", "abandoned_cart/last_chance"]
    assert run.capture.sends[0].context["items"] == CART["items"]
    ended = run.capture.lifecycle[-1]
    assert ended.kind == "ended"
    assert abs(ended.at - run.capture.lifecycle[0].at - timedelta(hours=73)) < timedelta(seconds=1)


async def test_order_within_the_hour_converts_without_email(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(minutes=40))
        await run.event("order_placed", cart_id="cart-7", order_id="o-1")
        result = await run.result()

    assert result.status == "converted"
    assert result.ended_by == "event:order_placed"
    assert run.capture.sends == []


async def test_order_after_first_reminder_stops_the_second(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(hours=5))
        await run.event("order_placed", cart_id="cart-7")
        result = await run.result()

    assert result.status == "converted"
    assert [s.step for s in run.capture.sends] == ["first_reminder"]
    ended = run.capture.lifecycle[-1]
    assert (ended.kind, ended.step) == ("ended", "order_window")


async def test_order_for_another_cart_does_not_end_it(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(minutes=30))
        await run.event("order_placed", cart_id="cart-99")
        result = await run.result()

    assert result.status == "completed"
    assert [s.step for s in run.capture.sends] == ["first_reminder", "second_reminder"]


async def test_unsubscribe_exits_at_once(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AbandonedCart, trigger_properties=CART) as run:
        await run.advance(timedelta(hours=2))
        await run.event("unsubscribed")
        result = await run.result()

    assert result.status == "exited"
    assert result.ended_by == "event:unsubscribed"
    assert [s.step for s in run.capture.sends] == ["first_reminder"]
