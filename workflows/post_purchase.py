"""Post-purchase: thank the customer now, ask for a review once they have lived with it."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class PostPurchase(Journey):
    name = "post_purchase"
    version = 1
    description = "A thank-you at once, then a review request with related products a week later."
    triggers = ("order_placed",)
    exits = ("unsubscribed",)
    key = "order_id"

    async def steps(self) -> None:
        order = dict(self.trigger.properties) if self.trigger else {}
        # The thank-you doubles as the order receipt: it goes out whatever the marketing
        # consent, caps or the hour. The review request is marketing.
        await self.send(
            "thank_you",
            template="post_purchase/thank_you",
            context=order,
            category="transactional",
        )
        await self.wait("settle_in", timedelta(days=7))
        await self.send("review_request", template="post_purchase/review_request", context=order)
