"""birthday: 09:00 local on the local birthday, once a year, in simulated time.

The daily schedule enrolls candidates at 12:00 UTC; each test first moves the time-skipping
server's clock to the next 12:00 UTC, then enrolls contacts as that run would.

Waiting for a result lets the test server skip far ahead once nothing is pending (years), so
tests spanning several days move the clock with `advance` and read results only at the end.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import Run, enrolled
from workflows.birthday import GIFT, SENT_YEAR, Birthday, is_birthday, month_day

AUCKLAND = "Pacific/Auckland"
LOS_ANGELES = "America/Los_Angeles"


async def at_next_noon_utc(env: WorkflowEnvironment) -> datetime:
    """Skip to the next 12:00 UTC, when the schedule runs; returns that moment."""
    now = await env.get_current_time()
    noon = datetime.combine(now.date(), time(12), tzinfo=UTC)
    if noon <= now:
        noon += timedelta(days=1)
    await env.sleep(noon - now)
    return noon


def nine_local(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(9), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def birthday_of(day: date, *, with_year: bool = False) -> str:
    return f"1990-{day:%m-%d}" if with_year else f"{day:%m-%d}"


def started(run: Run) -> datetime:
    assert run.capture.started_at is not None
    return run.capture.started_at


@pytest.mark.parametrize(
    ("zone", "days_ahead"),
    [
        # Auckland is UTC+12/+13: 09:00 on tomorrow's date comes this evening, UTC.
        (AUCKLAND, 1),
        # Los Angeles is UTC-8/-7: today's 09:00 there is still ahead at 12:00 UTC.
        (LOS_ANGELES, 0),
        # In UTC, today's 09:00 is past: tomorrow's birthday is the one the run sees.
        ("UTC", 1),
    ],
    ids=["auckland", "los_angeles", "utc"],  # recorded histories are named after them
)
async def test_the_email_goes_at_nine_local_on_the_local_birthday(
    time_env: WorkflowEnvironment, zone: str, days_ahead: int
) -> None:
    noon = await at_next_noon_utc(time_env)
    birthday = noon.date() + timedelta(days=days_ahead)
    attributes = {"birthday": birthday_of(birthday, with_year=True), "first_name": "Ada"}
    async with enrolled(
        time_env, Birthday, attributes=attributes, contact={"timezone": zone}
    ) as run:
        result = await run.result()

    assert result.status == "completed"
    [greeting] = run.capture.sends
    assert (greeting.step, greeting.template, greeting.context) == (
        "greeting",
        "birthday/greeting",
        {"gift": GIFT},
    )
    sent_at = started(run) + greeting.after
    assert abs(sent_at - nine_local(birthday, zone)) < timedelta(seconds=2)
    assert sent_at.astimezone(ZoneInfo(zone)).date() == birthday
    [remember] = run.capture.updates
    assert remember.attributes == {SENT_YEAR: birthday.year}


@pytest.mark.parametrize(
    ("zone", "days_ahead"),
    [
        (AUCKLAND, 0),  # today's 09:00 in Auckland was last night, UTC: yesterday's run
        ("UTC", 0),  # 09:00 UTC today is past: yesterday's run sent it
        (LOS_ANGELES, 1),  # tomorrow's run sends it
        ("UTC", -1),  # yesterday: a candidate (within a day), but past everywhere
    ],
    ids=["auckland_today", "utc_today", "los_angeles_tomorrow", "utc_yesterday"],
)
async def test_a_candidate_whose_local_birthday_is_another_day_is_skipped_at_once(
    time_env: WorkflowEnvironment, zone: str, days_ahead: int
) -> None:
    noon = await at_next_noon_utc(time_env)
    birthday = noon.date() + timedelta(days=days_ahead)
    async with enrolled(
        time_env,
        Birthday,
        attributes={"birthday": birthday_of(birthday)},
        contact={"timezone": zone},
    ) as run:
        result = await run.result()

    assert result.status == "completed"
    assert run.capture.sends == []
    assert run.capture.updates == []
    steps = [r for r in run.capture.lifecycle if r.kind == "step"]
    assert [s.step for s in steps] == ["read_birthday", "find_local_day"]
    # Ended without waiting: nothing holds the contact until the next run.
    assert max(r.at for r in run.capture.lifecycle) - started(run) < timedelta(minutes=1)


async def test_consecutive_daily_runs_send_one_email(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recording a history waits for the result, which lets the clock jump (see the top).
    monkeypatch.delenv("JOURNEYMAN_RECORD_HISTORIES", raising=False)
    noon = await at_next_noon_utc(time_env)
    birthday = noon.date() + timedelta(days=1)
    attributes: dict[str, object] = {"birthday": birthday_of(birthday)}
    runs: list[Run] = []
    # Birthday tomorrow in Los Angeles: a candidate today, tomorrow and the day after.
    for _ in range(3):
        async with enrolled(
            time_env,
            Birthday,
            attributes=dict(attributes),
            contact={"timezone": LOS_ANGELES},
            contact_id="c-birthday-runs",
        ) as run:
            await run.advance(timedelta(days=1))  # to the next day's run
            assert (await run.state()).status == "completed"
        attributes = run.capture.contact.attributes
        runs.append(run)

    sends = [
        (day, started(run) + s.after) for day, run in enumerate(runs) for s in run.capture.sends
    ]
    [(day, sent_at)] = sends
    assert day == 1
    assert abs(sent_at - nine_local(birthday, LOS_ANGELES)) < timedelta(seconds=2)
    assert attributes[SENT_YEAR] == birthday.year


async def test_a_contact_who_moves_west_after_the_email_does_not_get_a_second(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNEYMAN_RECORD_HISTORIES", raising=False)
    # Sent in Auckland on their birthday; the next day's run finds them in Los Angeles,
    # where it is still their birthday. The remembered year stops a second email.
    noon = await at_next_noon_utc(time_env)
    birthday = noon.date() + timedelta(days=1)
    async with enrolled(
        time_env,
        Birthday,
        attributes={"birthday": birthday_of(birthday)},
        contact={"timezone": AUCKLAND},
        contact_id="c-birthday-moves",
    ) as first:
        await first.advance(timedelta(days=1))
    async with enrolled(
        time_env,
        Birthday,
        attributes=first.capture.contact.attributes,
        contact={"timezone": LOS_ANGELES},
        contact_id="c-birthday-moves",
    ) as second:
        await second.advance(timedelta(hours=12))  # past 09:00 in Los Angeles
        state = await second.state()

    assert len(first.capture.sends) == 1
    assert first.capture.contact.attributes[SENT_YEAR] == birthday.year
    assert state.status == "completed"
    assert second.capture.sends == []
    assert [s.outcome for s in state.steps][-1] == (
        f"next 09:00 is on {birthday.isoformat()} {LOS_ANGELES}"
    )


async def test_last_years_email_does_not_stop_this_years(time_env: WorkflowEnvironment) -> None:
    noon = await at_next_noon_utc(time_env)
    birthday = noon.date() + timedelta(days=1)
    attributes = {"birthday": birthday_of(birthday), SENT_YEAR: birthday.year - 1}
    async with enrolled(time_env, Birthday, attributes=attributes) as run:
        await run.result()

    assert [s.step for s in run.capture.sends] == ["greeting"]
    assert run.capture.contact.attributes[SENT_YEAR] == birthday.year


@pytest.mark.parametrize("birthday", [None, "", "tomorrow", "13-01", "02-30", 19900101])
async def test_no_readable_birthday_sends_nothing(
    time_env: WorkflowEnvironment, birthday: object
) -> None:
    async with enrolled(time_env, Birthday, attributes={"birthday": birthday}) as run:
        result = await run.result()

    assert result.status == "completed"
    assert run.capture.sends == []


def test_birthdays_read_as_month_and_day() -> None:
    assert month_day("1990-11-23") == (11, 23)
    assert month_day("11-23") == (11, 23)
    assert month_day(" 02-29 ") == (2, 29)
    assert month_day("2026-02-30") is None
    assert month_day("11/23") is None


def test_the_29th_of_february_is_celebrated_on_the_28th_in_other_years() -> None:
    leap_day = (2, 29)
    assert is_birthday(leap_day, date(2028, 2, 29))
    assert not is_birthday(leap_day, date(2028, 2, 28))
    assert is_birthday(leap_day, date(2027, 2, 28))
    assert not is_birthday(leap_day, date(2027, 3, 1))
    assert is_birthday((2, 28), date(2027, 2, 28))
    assert is_birthday(leap_day, date(2000, 2, 29))  # divisible by 400: a leap year
    assert is_birthday(leap_day, date(2100, 2, 28))  # divisible by 100 only: not one


def test_the_journey_is_scheduled_daily_on_the_candidates() -> None:
    schedule = Birthday.schedule
    assert schedule is not None
    assert (schedule.segment, schedule.hour, schedule.minute) == ("birthday_candidates", [12], [0])
    assert Birthday.reentry == "after_exit"
