"""Abandoned cart: remind a shopper of what they left, twice, unless they buy.

Keyed by `cart_id`: each cart is its own enrollment, and only an `order_placed` carrying the
same `cart_id` converts it (an order for another cart leaves this one running).

Version 2 tests the second reminder: variant A offers the coupon from the event's `coupon`
property, variant B does not, and a 10% holdout gets no second reminder at all, so the lift of
each over sending nothing can be measured. Contacts reachable by SMS but not by email get the
second reminder as an SMS.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import Channel, ContactSnapshot
    from workflows.runtime import Journey, journey
    from workflows.splits import HOLDOUT


@journey
class AbandonedCart(Journey):
    name = "abandoned_cart"
    version = 2
    description = (
        "Two reminders for a cart left behind, the second an A/B test (coupon or not) with a "
        "10% holdout; stopped by an order for that cart."
    )
    triggers = ("cart_abandoned",)
    goals = ("order_placed",)
    exits = ("unsubscribed",)
    key = "cart_id"
    reentry = "after_exit"

    async def steps(self) -> None:
        cart = dict(self.trigger.properties) if self.trigger else {}
        coupon = cart.pop("coupon", None)
        # An order for this cart during any wait is a goal: it ends the enrollment at once,
        # so "wait up to N for the order" is simply a wait here.
        await self.wait("grace_period", timedelta(hours=1))
        await self.send("first_reminder", template="abandoned_cart/reminder", context=cart)
        await self.wait("order_window", timedelta(hours=24))
        variant = await self.split("second_reminder_test", {"A": 50, "B": 50}, holdout=10)
        if variant != HOLDOUT:
            contact = await self.read_contact("choose_channel")
            offer = {**cart, "coupon": coupon} if variant == "A" and coupon else cart
            await self.send(
                "second_reminder",
                template="abandoned_cart/last_chance",
                channel=second_reminder_channel(contact),
                context=offer,
            )
        await self.wait("cool_down", timedelta(hours=48))


def second_reminder_channel(contact: ContactSnapshot) -> Channel:
    """SMS only for a contact who can't get marketing email but agreed to SMS."""
    email_ok = contact.reachable_by("email") and contact.consent.get("email", True)
    sms_ok = contact.reachable_by("sms") and contact.consent.get("sms", False)
    return "sms" if sms_ok and not email_ok else "email"
