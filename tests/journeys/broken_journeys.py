"""A deliberately broken edit of abandoned_cart: its steps reordered without a patch."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class ReorderedAbandonedCart(Journey):
    name = "abandoned_cart"
    version = 1
    triggers = ("cart_abandoned",)
    goals = ("order_placed",)
    exits = ("unsubscribed",)
    key = "cart_id"

    async def steps(self) -> None:
        cart = dict(self.trigger.properties) if self.trigger else {}
        # The edit: the reminder now goes out before the grace period.
        await self.send("first_reminder", template="abandoned_cart/reminder", context=cart)
        await self.wait("grace_period", timedelta(hours=1))
        await self.wait("order_window", timedelta(hours=24))
        await self.send("second_reminder", template="abandoned_cart/last_chance", context=cart)
        await self.wait("cool_down", timedelta(hours=48))
