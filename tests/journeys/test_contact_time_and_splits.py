"""Runtime primitives of issue 3: local-time waits, held-back sends, webhooks and splits."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.localtime import next_local_time
from tests.journeys.harness import SendPolicy, enrolled
from tests.journeys.sample_journeys import BadSplit, LocalMorning, QuietJourney, SplitsTwice
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    JOURNEY_STEP,
    QuietHours,
    SendRequest,
    SendResult,
)
from workflows.splits import assign_variant


async def test_wait_until_local_uses_the_contacts_zone(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, LocalMorning, contact={"timezone": "America/New_York"}) as run:
        result = await run.result()

    entered = run.capture.lifecycle[0].at
    new_york = ZoneInfo("America/New_York")
    morning = next_local_time(entered, time(9), new_york)
    monday = next_local_time(morning, time(9, 30), new_york, [0])
    assert [s.step for s in run.capture.sends[:2]] == ["morning_note", "receipt"]
    assert _close(run.capture.sends[0].after, morning - entered)
    assert _close(run.capture.sends[1].after, monday - entered)
    assert monday.astimezone(new_york).weekday() == 0
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["next_morning"] == "waited until 09:00 America/New_York"


async def test_wait_until_local_falls_back_to_the_journeys_zone(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, LocalMorning, contact={"timezone": None}) as run:
        result = await run.result()

    entered = run.capture.lifecycle[0].at
    morning = next_local_time(entered, time(9), ZoneInfo("Europe/Rome"))
    assert _close(run.capture.sends[0].after, morning - entered)
    assert {s.name: s.outcome for s in result.steps}["next_morning"].endswith("Europe/Rome")


def morning_note_held_once(reason: str, hold: timedelta) -> SendPolicy:
    """A send policy: the first attempt of `morning_note` is held back for `hold`."""

    def policy(request: SendRequest, due: datetime) -> SendResult | None:
        if request.step == "morning_note" and request.attempt == 1:
            return SendResult(
                message_id=request.message_id,
                status="deferred",
                reason=reason,
                retry_at=due + hold,
            )
        return None

    return policy


async def test_a_held_back_send_waits_durably_then_goes_out(time_env: WorkflowEnvironment) -> None:
    quiet_first_time = morning_note_held_once("quiet_hours", timedelta(hours=3))

    async with enrolled(time_env, LocalMorning, policy=quiet_first_time) as run:
        result = await run.result()

    held, sent = run.capture.held[0], run.capture.sends[0]
    assert (held.step, held.attempt) == ("morning_note", 1)
    assert (sent.step, sent.attempt) == ("morning_note", 2)
    assert sent.after - held.after == timedelta(hours=3)
    assert {s.name: s.outcome for s in result.steps}["morning_note"] == "sent"


async def test_a_held_back_send_shows_where_the_enrollment_waits(
    time_env: WorkflowEnvironment,
) -> None:
    # `JourneyStep` names the step an enrollment waits in: a send held back by quiet hours
    # or a cap is one, though a send that goes out at once is not shown.
    held_for_a_month = morning_note_held_once("frequency_cap", timedelta(days=30))

    async with enrolled(time_env, LocalMorning, policy=held_for_a_month) as run:
        await run.advance(timedelta(days=2))  # past the next 09:00, into the hold
        held = await run.handle.describe()
        state = await run.state()
        result = await run.result()
        ended = await run.handle.describe()

    assert [s.step for s in run.capture.held] == ["morning_note"]
    assert held.typed_search_attributes.get(JOURNEY_STEP) == "morning_note"
    assert state.current_step == "morning_note" and state.wait_until is not None
    assert ended.typed_search_attributes.get(JOURNEY_STEP) == "(completed)"
    assert result.status == "completed"


async def test_a_send_held_back_forever_is_dropped_not_queued(
    time_env: WorkflowEnvironment,
) -> None:
    def always_capped(request: SendRequest, due: datetime) -> SendResult | None:
        if request.step != "morning_note":
            return None
        return SendResult(
            message_id=request.message_id,
            status="deferred",
            reason="frequency_cap",
            retry_at=due + timedelta(days=1),
        )

    async with enrolled(time_env, LocalMorning, policy=always_capped) as run:
        result = await run.result()

    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["morning_note"] == "suppressed: deferred_too_long"
    assert len(run.capture.held) == 20
    assert result.status == "completed"


async def test_webhook_and_category_reach_the_send_activity(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, LocalMorning) as run:
        await run.result()

    by_step = {s.step: s for s in run.capture.sends}
    assert by_step["morning_note"].category == "marketing"
    assert by_step["receipt"].category == "transactional"
    webhook = by_step["tell_crm"]
    assert (webhook.channel, webhook.category) == ("webhook", "transactional")
    assert webhook.context == {"payload": {"stage": "engaged"}, "url": "https://crm.example/in"}


async def test_splits_are_recorded_and_stable_across_re_entries(
    time_env: WorkflowEnvironment,
) -> None:
    drawn = []
    for _ in range(2):
        async with enrolled(time_env, SplitsTwice, contact_id="c-stable") as run:
            result = await run.result()
        drawn.append({s.name: s.outcome for s in result.steps if s.kind == "split"})
    assert drawn[0] == drawn[1]
    expected = assign_variant(
        "c-stable", "test_splits_twice", "subject_test", {"short": 1, "long": 1}, 20
    )
    assert drawn[0]["subject_test"] == f"variant {expected}"
    step_records = [r for r in run.capture.lifecycle if r.step_kind == "split"]
    assert [r.outcome for r in step_records] == list(drawn[1].values())


def test_split_shares_follow_the_weights_and_the_holdout() -> None:
    shares: dict[str, int] = {}
    for n in range(20_000):
        variant = assign_variant(f"c-{n}", "j", "s", {"A": 1, "B": 3}, holdout=10)
        shares[variant] = shares.get(variant, 0) + 1
    assert abs(shares["holdout"] / 20_000 - 0.10) < 0.01
    assert abs(shares["A"] / 20_000 - 0.225) < 0.015
    assert abs(shares["B"] / 20_000 - 0.675) < 0.015
    # Different steps draw independently: the same contacts do not all land alike.
    same = sum(
        assign_variant(f"c-{n}", "j", "s1", {"A": 1, "B": 1})
        == assign_variant(f"c-{n}", "j", "s2", {"A": 1, "B": 1})
        for n in range(2_000)
    )
    assert 800 < same < 1_200


async def test_a_split_with_bad_weights_fails_the_enrollment_loudly(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, BadSplit) as run:
        with pytest.raises(WorkflowFailureError) as failure:
            await run.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == ERR_JOURNEY_DEFINITION


def _close(seen: timedelta, expected: timedelta) -> bool:
    # Skipped time is exact, but the capture rounds the real milliseconds spent on top.
    return abs(seen - expected) <= timedelta(seconds=1)


async def test_quiet_hours_come_from_the_step_else_the_journey(
    time_env: WorkflowEnvironment,
) -> None:
    seen: dict[str, QuietHours | None] = {}

    def record(request: SendRequest, due: datetime) -> SendResult | None:
        seen[request.step] = request.quiet_hours
        return None

    async with enrolled(time_env, QuietJourney, policy=record) as run:
        await run.result()

    assert seen == {
        "journey_rule": QuietHours("22:00", "07:00", policy="skip"),
        "step_rule": QuietHours(enabled=False),
    }
