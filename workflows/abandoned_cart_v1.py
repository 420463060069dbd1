"""Abandoned cart, version 1: frozen.

Kept so that enrollments started on v1 finish on the code they began with (new ones start on
the newest version in `abandoned_cart.py`). Delete it once no v1 enrollment runs:
`JourneyVersion = 1 AND JourneyName = "abandoned_cart"` in the Temporal UI finds them.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class AbandonedCartV1(Journey):
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
