"""welcome_series, every branch, in simulated time."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from workflows.welcome_series import WelcomeSeries


async def test_welcome_then_three_general_picks_two_days_apart(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, WelcomeSeries) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.step, s.after) for s in run.capture.sends] == [
        ("welcome", timedelta(0)),
        ("topic_1", timedelta(days=2)),
        ("topic_2", timedelta(days=4)),
        ("topic_3", timedelta(days=6)),
    ]
    picks = [s.context["pick"] for s in run.capture.sends[1:]]
    assert {p["topic"] for p in picks} == {"general"}
    assert len({p["title"] for p in picks}) == 3


async def test_topics_rotate_through_the_contacts_interests(time_env: WorkflowEnvironment) -> None:
    attributes = {"interests": ["analytics", "ecommerce"]}
    async with enrolled(time_env, WelcomeSeries, attributes=attributes) as run:
        await run.result()

    picks = [s.context["pick"] for s in run.capture.sends[1:]]
    assert [p["topic"] for p in picks] == ["analytics", "ecommerce", "analytics"]
    # The second analytics email features the next item, not the same one again.
    assert picks[0]["title"] != picks[2]["title"]


async def test_interests_are_read_fresh_before_each_email(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, WelcomeSeries) as run:
        await run.advance(timedelta(days=3))
        run.capture.contact.attributes = {"interests": ["automation"]}
        await run.result()

    topics = [s.context["pick"]["topic"] for s in run.capture.sends[1:]]
    assert topics == ["general", "automation", "automation"]


async def test_an_order_converts_and_stops_the_series(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, WelcomeSeries) as run:
        await run.advance(timedelta(days=3))
        await run.event("order_placed", order_id="o-1")
        result = await run.result()

    assert result.status == "converted"
    assert [s.step for s in run.capture.sends] == ["welcome", "topic_1"]


async def test_unsubscribe_exits(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, WelcomeSeries) as run:
        await run.advance(timedelta(days=1))
        await run.event("unsubscribed")
        result = await run.result()

    assert result.status == "exited"
    assert [s.step for s in run.capture.sends] == ["welcome"]
