"""Abandoned cart: remind a shopper of what they left, twice, unless they buy.

Keyed by `cart_id`: each cart is its own enrollment, and only an `order_placed` carrying the
same `cart_id` converts it (an order for another cart leaves this one running).
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class AbandonedCart(Journey):
    name = "abandoned_cart"
    version = 1
    description = "Two reminders for a cart left behind, stopped by an order for that cart."
    triggers = ("cart_abandoned",)
    goals = ("order_placed",)
    exits = ("unsubscribed",)
    key = "cart_id"
    reentry = "after_exit"

    async def steps(self) -> None:
        cart = dict(self.trigger.properties) if self.trigger else {}
        # An order for this cart during any wait is a goal: it ends the enrollment at once,
        # so "wait up to N for the order" is simply a wait here.
        await self.wait("grace_period", timedelta(hours=1))
        await self.send("first_reminder", template="abandoned_cart/reminder", context=cart)
        await self.wait("order_window", timedelta(hours=24))
        await self.send("second_reminder", template="abandoned_cart/last_chance", context=cart)
        await self.wait("cool_down", timedelta(hours=48))
