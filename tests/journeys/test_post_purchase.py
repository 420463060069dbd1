"""post_purchase, every branch, in simulated time."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from workflows.post_purchase import PostPurchase

ORDER = {
    "order_id": "o-1001",
    "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    "related_products": [{"name": "Desk lamp", "url": "https://shop.example/p/lamp"}],
}


async def test_thanks_now_and_review_request_a_week_later(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, PostPurchase, trigger_properties=ORDER) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.template, s.after) for s in run.capture.sends] == [
        ("post_purchase/thank_you", timedelta(0)),
        ("post_purchase/review_request", timedelta(days=7)),
    ]
    assert run.capture.sends[1].context["related_products"] == ORDER["related_products"]
    assert [s.category for s in run.capture.sends] == ["transactional", "marketing"]


async def test_unsubscribed_contact_gets_no_review_request(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, PostPurchase, trigger_properties=ORDER) as run:
        await run.advance(timedelta(days=3))
        await run.event("unsubscribed")
        result = await run.result()

    assert result.status == "exited"
    assert [s.step for s in run.capture.sends] == ["thank_you"]
