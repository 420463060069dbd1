"""reengagement, every branch, in simulated time."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import Run, enrolled
from workflows.reengagement import OFFER, Reengagement


def step_times(run: Run) -> dict[str, timedelta]:
    """When each step finished, counted from the enrollment's start."""
    start = run.capture.started_at
    assert start is not None
    return {
        record.step: record.at - start
        for record in run.capture.lifecycle
        if record.kind == "step" and record.step
    }


async def test_silence_for_a_week_after_the_offer_marks_the_contact_dormant(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, Reengagement) as run:
        result = await run.result()

    assert result.status == "completed"
    [offer] = run.capture.sends
    assert (offer.step, offer.template, offer.after) == (
        "we_miss_you",
        "reengagement/we_miss_you",
        timedelta(0),
    )
    assert offer.category == "marketing"
    assert offer.context == {"offer": OFFER}
    [update] = run.capture.updates
    assert update.dormant is True
    assert update.attributes == {}
    assert "no activity 7 days" in update.reason
    assert step_times(run)["mark_dormant"] >= timedelta(days=7)
    assert step_times(run)["mark_dormant"] < timedelta(days=7, minutes=1)


async def test_any_event_during_the_week_converts_and_nothing_is_marked(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, Reengagement) as run:
        await run.advance(timedelta(days=3))
        await run.event("page_viewed", path="/new-arrivals")
        result = await run.result()

    assert (result.status, result.ended_by) == ("converted", "event:page_viewed")
    assert [s.step for s in run.capture.sends] == ["we_miss_you"]
    assert run.capture.updates == []


async def test_opening_the_offer_counts_as_coming_back(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, Reengagement) as run:
        await run.advance(timedelta(hours=5))
        await run.event("email.opened")
        result = await run.result()

    assert (result.status, result.ended_by) == ("converted", "event:email.opened")
    assert run.capture.updates == []


async def test_a_lead_score_event_is_not_activity(time_env: WorkflowEnvironment) -> None:
    # lead.* events follow from behaviour (here, decay) rather than being behaviour.
    async with enrolled(time_env, Reengagement) as run:
        await run.advance(timedelta(days=2))
        await run.event("lead.disqualified")
        result = await run.result()

    assert result.status == "completed"
    assert [u.dormant for u in run.capture.updates] == [True]


async def test_unsubscribing_exits_without_marking(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, Reengagement) as run:
        await run.advance(timedelta(days=1))
        await run.event("unsubscribed")
        result = await run.result()

    assert (result.status, result.ended_by) == ("exited", "event:unsubscribed")
    assert run.capture.updates == []


async def test_an_event_after_the_offer_went_out_but_before_the_wait_still_converts(
    time_env: WorkflowEnvironment,
) -> None:
    # The event lands while nothing is waiting yet: goals count at any step.
    async with enrolled(time_env, Reengagement) as run:
        await run.event("order_placed", order_id="o-9")
        result = await run.result()

    assert result.status == "converted"
    assert run.capture.updates == []


def test_the_journey_is_scheduled_daily_on_the_inactive_segment() -> None:
    schedule = Reengagement.schedule
    assert schedule is not None
    assert (schedule.segment, schedule.hour, schedule.minute) == ("inactive_30d", [10], [0])
    assert (schedule.day_of_week, schedule.day_of_month, schedule.month) == ([], [], [])
    assert Reengagement.triggers == ()
    assert Reengagement.reentry == "after_exit"
