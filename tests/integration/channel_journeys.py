"""Small journeys that send on the SMS, push and webhook channels (not published journeys).

In a module of their own, importing only what a workflow may, because the workflow sandbox
re-imports the module that defines a workflow. The category and the cap policy of a send come
from the trigger's properties, so one journey serves the consent and cap cases.
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import Category, HoldPolicy
    from workflows.runtime import Journey, journey


def _properties(journey: Journey) -> dict[str, Any]:
    return dict(journey.trigger.properties) if journey.trigger else {}


@journey
class TextThenTellCrm(Journey):
    name = "test_text_then_tell_crm"
    description = "An SMS (the cart's last chance), an hour, then a webhook to the CRM."
    triggers = ("go",)
    reentry = "always"

    async def steps(self) -> None:
        properties = _properties(self)
        category: Category = properties.get("category", "marketing")
        await self.send(
            "text",
            template="abandoned_cart/last_chance",
            channel="sms",
            context=properties.get("cart", {}),
            category=category,
        )
        await self.wait("pause", timedelta(hours=1))
        await self.webhook("tell_crm", payload={"stage": "texted"})


@journey
class OfferByText(Journey):
    name = "test_offer_by_text"
    description = "Another journey's marketing SMS, ten minutes in, for caps across journeys."
    triggers = ("go",)
    reentry = "always"

    async def steps(self) -> None:
        properties = _properties(self)
        await self.wait("browse", timedelta(minutes=10))
        on_cap: HoldPolicy = properties.get("on_cap", "skip")
        await self.send(
            "offer",
            template="abandoned_cart/last_chance",
            channel="sms",
            context=properties.get("cart", {}),
            on_cap=on_cap,
        )


@journey
class PushThenNotify(Journey):
    name = "test_push_then_notify"
    description = "A push notification for an order, then a signed webhook about it."
    triggers = ("go",)
    reentry = "always"

    async def steps(self) -> None:
        order = _properties(self)
        await self.send(
            "thank_you", template="post_purchase/thank_you", channel="push", context=order
        )
        await self.webhook("notify_crm", payload={"order_id": order.get("order_id")})


CHANNEL_JOURNEYS: list[type[Journey]] = [TextThenTellCrm, OfferByText, PushThenNotify]
