"""The simulation engine: real journeys, real templates and send rules, captured effects."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from temporalio.activity import _Definition
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from journeyman.simulate import (
    SimContact,
    SimEvent,
    Simulation,
    SimulationInputError,
    _Capture,
    format_offset,
    parse_offset,
    render_timeline,
    simulate,
)
from tests.simulate.conftest import next_local
from workflows.catalog import UnknownJourneyError
from workflows.contracts import IN_SEGMENT, SegmentCheck

DAY = 86400
ADA = {
    "email": "ada@example.com",
    "timezone": "Europe/Rome",
    "attributes": {"first_name": "Ada", "interests": ["automation"]},
}


def activity_name(fn: object) -> str | None:
    definition = _Definition.from_callable(fn)  # type: ignore[arg-type]
    return definition.name if definition else None


def events(*items: dict[str, object]) -> list[SimEvent]:
    return [SimEvent.model_validate(item) for item in items]


def printed(simulation: Simulation) -> str:
    console = Console(width=200, record=True)
    console.print(render_timeline(simulation))
    return console.export_text()


async def test_welcome_series_sends_four_emails_two_days_apart(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10), "Europe/Rome")
    result = await simulate(
        "welcome_series", SimContact(**ADA), [], settings=settings, env=time_env, start_at=start
    )

    assert result.started_at == start
    sent = [(e.offset_seconds, e.step, e.channel, e.subject) for e in result.sent]
    assert sent == [
        (0, "welcome", "email", "Welcome to Journeyman, Ada"),
        (2 * DAY, "topic_1", "email", "Five journeys every shop should run"),
        (4 * DAY, "topic_2", "email", "Save your seat: Automation without the spam"),
        (6 * DAY, "topic_3", "email", "Timing sends to local time"),
    ]
    assert [e.at for e in result.sent] == [start + timedelta(days=n) for n in (0, 2, 4, 6)]
    assert result.sent[0].preview == "Thanks for signing up for Journeyman. We're glad you're here."
    assert all(e.template and e.template.startswith("welcome_series/") for e in result.sent)
    assert (result.status, result.ended_by, result.ended_after) == ("completed", None, "6d")
    kinds = [e.kind for e in result.timeline]
    assert kinds[:3] == ["event", "entered", "sent"] and kinds[-1] == "ended"
    offsets = [e.offset_seconds for e in result.timeline]
    assert offsets == sorted(offsets)
    assert "Welcome to Journeyman, Ada" in printed(result)


async def test_an_order_at_2h_converts_the_cart_and_stops_the_second_reminder(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    cart = {"cart_id": "cart-9", "items": [{"name": "Boots", "price": 120}], "total": 120}
    result = await simulate(
        "abandoned_cart",
        SimContact(email="bo@example.com", attributes={"first_name": "Bo"}),
        events(
            {"name": "cart_abandoned", "after": "0", "properties": cart},
            {"name": "order_placed", "after": "2h", "properties": {"cart_id": "cart-9"}},
        ),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    assert result.version == 2
    assert [(e.offset, e.step, e.subject) for e in result.sent] == [
        ("1h", "first_reminder", "Still thinking about the Boots?")
    ]
    order = [e for e in result.timeline if e.kind == "event" and e.event == "order_placed"]
    assert [(e.offset_seconds, e.properties) for e in order] == [(7200, {"cart_id": "cart-9"})]
    assert (result.status, result.ended_by, result.ended_after) == (
        "converted",
        "event:order_placed",
        "2h",
    )
    ended = result.timeline[-1]
    assert (ended.kind, ended.step, ended.offset_seconds) == ("ended", "order_window", 7200)
    assert not any(e.step == "second_reminder" for e in result.timeline)


async def test_quiet_hours_defer_the_send_and_say_until_when(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    rome = ZoneInfo("Europe/Rome")
    start = await next_local(time_env, time(22, 30), "Europe/Rome")
    result = await simulate(
        "welcome_series", SimContact(**ADA), [], settings=settings, env=time_env, start_at=start
    )

    next_morning = datetime.combine(
        start.astimezone(rome).date() + timedelta(days=1), time(8), tzinfo=rome
    ).astimezone(UTC)
    deferred = [e for e in result.timeline if e.kind == "deferred"]
    assert [(e.step, e.offset_seconds, e.reason, e.retry_at) for e in deferred] == [
        ("welcome", 0, "quiet_hours", next_morning)
    ]
    assert result.sent[0].step == "welcome"
    assert result.sent[0].at == next_morning
    # The series keeps its rhythm from the deferred send: two days after it.
    assert result.sent[1].at == next_morning + timedelta(days=2)
    text = printed(result)
    assert "held back (quiet_hours) until" in text
    assert f"{next_morning:%Y-%m-%d %H:%M} UTC" in text


async def test_an_unsubscribed_contact_gets_nothing_and_the_timeline_says_why(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10), "Europe/Rome")
    contact = SimContact(**{**ADA, "consent": {"email": False}})
    result = await simulate(
        "welcome_series", contact, [], settings=settings, env=time_env, start_at=start
    )

    assert result.sent == []
    suppressed = [(e.step, e.reason, e.offset) for e in result.timeline if e.kind == "suppressed"]
    assert suppressed == [
        ("welcome", "unsubscribed", "0s"),
        ("topic_1", "unsubscribed", "2d"),
        ("topic_2", "unsubscribed", "4d"),
        ("topic_3", "unsubscribed", "6d"),
    ]
    assert result.status == "completed"
    assert "suppressed: unsubscribed" in printed(result)


async def test_a_lead_qualified_after_a_day_goes_to_sales_and_gets_the_demo_invite(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    lead = SimContact(
        email="grace@example.com",
        attributes={"first_name": "Grace", "last_name": "Hopper", "company": "Navy"},
        score=72,
    )
    result = await simulate(
        "lead_nurturing",
        lead,
        events(
            {"name": "whitepaper_downloaded", "properties": {"title": "Journeys at scale"}},
            {"name": "lead.qualified", "after": "1d"},
        ),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    sales = [e for e in result.timeline if e.kind == "sales"]
    assert [(e.offset, e.step, e.subject) for e in sales] == [
        ("1d", "notify_sales", "Qualified lead: Grace Hopper (Navy), score 72")
    ]
    assert sales[0].detail == "to sales@localhost; no CRM configured, no task"
    assert result.sales_notifications == [
        {
            "step": "notify_sales",
            "subject": "Qualified lead: Grace Hopper (Navy), score 72",
            "task_queued": False,
        }
    ]
    assert [(e.offset, e.step) for e in result.sent] == [
        ("0s", "whitepaper"),
        ("1d", "demo_invite"),
        ("8d", "demo_reminder"),
    ]
    assert "Journeys at scale" in (result.sent[0].subject or "") + (result.sent[0].preview or "")
    # The qualification cut the series short: no case study, no pricing email.
    assert not any(e.step in ("case_study", "pricing_invite") for e in result.timeline)
    assert (result.status, result.ended_after) == ("completed", "38d")


async def test_an_order_hands_the_lead_to_onboarding_which_is_reported_not_started(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    result = await simulate(
        "lead_nurturing",
        SimContact(email="grace@example.com"),
        events({"name": "order_placed", "after": "2d"}),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    assert (result.status, result.ended_by) == ("converted", "event:order_placed")
    assert result.journeys_started == [
        {"journey": "onboarding", "key": None, "trigger": "order_placed"}
    ]
    hand_off = [e for e in result.timeline if e.step == "hand_off_to_onboarding"]
    assert [(e.kind, e.offset) for e in hand_off] == [("step", "2d")]


async def test_html_files_are_written_per_step(
    time_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    start = await next_local(time_env, time(10), "Europe/Rome")
    result = await simulate(
        "welcome_series",
        SimContact(**ADA),
        [],
        settings=settings,
        env=time_env,
        start_at=start,
        html_dir=tmp_path / "html",
    )

    files = sorted(path.name for path in (tmp_path / "html").iterdir())
    assert files == ["topic_1.html", "topic_2.html", "topic_3.html", "welcome.html"]
    welcome = (tmp_path / "html" / "welcome.html").read_text()
    assert "<html" in welcome.lower() and "Ada" in welcome
    # A marketing email carries its unsubscribe link, as the real send composes it.
    assert "/u/" in welcome
    assert result.sent[0].html_file == str(tmp_path / "html" / "welcome.html")


async def test_a_journey_still_running_at_the_horizon_is_reported_running(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    result = await simulate(
        "lead_nurturing",
        SimContact(email="grace@example.com"),
        [],
        settings=settings,
        env=time_env,
        start_at=start,
        horizon=timedelta(days=5),
    )

    assert result.status == "running"
    assert result.ended_by == "still running at the simulation horizon (5d)"
    assert [e.step for e in result.sent] == ["whitepaper", "case_study"]


async def test_a_long_journey_simulates_in_well_under_two_seconds(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    """lead_nurturing's longest path: the series, qualifying at the end of its 30-day window,
    the demo, the follow-ups and the 30-day order window: about 75 simulated days."""
    start = await next_local(time_env, time(10))
    began = clock.perf_counter()
    result = await simulate(
        "lead_nurturing",
        SimContact(email="grace@example.com"),
        events(
            {"name": "lead.qualified", "after": "36d"},
            {"name": "demo_attended", "after": "P38D"},
        ),
        settings=settings,
        env=time_env,
        start_at=start,
    )
    took = clock.perf_counter() - began

    assert result.ended_after == "75d"
    assert [e.step for e in result.sent][-3:] == ["demo_thanks", "proposal", "post_demo_check_in"]
    assert took < 2.0, took


async def test_refusals(time_env: WorkflowEnvironment, settings: Settings) -> None:
    with pytest.raises(UnknownJourneyError):
        await simulate("no_such_journey", SimContact(), [], settings=settings, env=time_env)
    past = await time_env.get_current_time() - timedelta(days=1)
    with pytest.raises(SimulationInputError, match="before the simulation clock"):
        await simulate(
            "welcome_series", SimContact(), [], settings=settings, env=time_env, start_at=past
        )
    with pytest.raises(SimulationInputError, match="at most"):
        await simulate(
            "welcome_series",
            SimContact(),
            [SimEvent(name="x")] * 201,
            settings=settings,
            env=time_env,
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("2h", timedelta(hours=2)),
        ("2d3h", timedelta(days=2, hours=3)),
        ("1w", timedelta(days=7)),
        ("90m", timedelta(minutes=90)),
        ("P2DT3H", timedelta(days=2, hours=3)),
        ("PT30M", timedelta(minutes=30)),
        ("P1W", timedelta(days=7)),
    ],
)
def test_offsets_parse(text: str, expected: timedelta) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["", "2x", "d2", "P1M", "P1Y", "PT", "-1h", "2 days"])
def test_bad_offsets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"offset|duration"):
        parse_offset(text)


def test_bad_contacts_and_events_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown channel fax"):
        SimContact(consent={"fax": True})
    with pytest.raises(ValueError, match="unknown timezone"):
        SimContact(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="up to 400 days"):
        SimEvent(name="x", after="401d")


def test_offsets_format() -> None:
    assert format_offset(timedelta(0)) == "0s"
    assert format_offset(timedelta(days=2, hours=3, seconds=5)) == "2d 3h 5s"


async def test_a_contact_without_email_consent_gets_the_second_reminder_by_sms(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    contact = SimContact(email="bo@example.com", phone="+44 20 7946 0958", consent={"email": False})
    cart = {"cart_id": "c1", "items": [{"name": "Hat"}], "coupon": "SAVE10"}
    result = await simulate(
        "abandoned_cart",
        contact,
        events({"name": "cart_abandoned", "properties": cart}),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    suppressed = [(e.step, e.channel, e.reason) for e in result.timeline if e.kind == "suppressed"]
    assert suppressed == [("first_reminder", "email", "unsubscribed")]
    # The split is the one this contact id gets live (a hash of contact, journey and step).
    split = [e.detail for e in result.timeline if e.step == "second_reminder_test"]
    assert split == ["split: variant A"]
    assert [(e.offset, e.channel, e.subject) for e in result.sent] == [("1d 1h", "sms", None)]
    assert "Use code SAVE10" in (result.sent[0].preview or "")


async def test_an_event_after_the_end_is_shown_undelivered(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10), "Europe/Rome")
    result = await simulate(
        "welcome_series",
        SimContact(**ADA),
        events({"name": "order_placed", "after": "10d"}),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    assert result.status == "completed"
    last = result.timeline[-1]
    assert (last.kind, last.event, last.offset) == ("event", "order_placed", "10d")
    assert last.detail == "not delivered: the enrollment had ended"


async def test_a_journey_without_trigger_runs_and_its_contact_updates_are_reported(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    start = await next_local(time_env, time(10))
    result = await simulate(
        "reengagement",
        SimContact(email="quiet@example.com"),
        [],
        settings=settings,
        env=time_env,
        start_at=start,
    )

    assert result.timeline[0].kind == "entered"  # a schedule enrolls: no trigger event
    assert [(e.offset, e.step) for e in result.sent] == [("0s", "we_miss_you")]
    assert [u["dormant"] for u in result.contact_updates] == [True]
    marked = [e for e in result.timeline if e.step == "mark_dormant"]
    assert [(e.offset, e.detail) for e in marked] == [("7d", "update_contact: dormant")]


async def test_segment_checks_answer_from_the_contact(settings: Settings) -> None:
    capture = _Capture(
        contact=SimContact(segments={"vip": True}),
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        html_dir=None,
    )
    (in_segment,) = [fn for fn in capture.activities() if activity_name(fn) == IN_SEGMENT]
    now = datetime.now(UTC)
    answers = [
        await ActivityEnvironment().run(in_segment, SegmentCheck("c", name, now))
        for name in ("vip", "churned")
    ]
    assert [(a.segment, a.member) for a in answers] == [("vip", True), ("churned", False)]
    assert capture.segment_checks == [
        {"segment": "vip", "member": True},
        {"segment": "churned", "member": False},
    ]


async def test_a_template_error_shows_as_a_failed_send_naming_the_variable(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    """The cart event without `items`: the reminder template cannot render, which a live
    run would only show in the message log."""
    start = await next_local(time_env, time(10))
    result = await simulate(
        "abandoned_cart",
        SimContact(email="bo@example.com"),
        events({"name": "cart_abandoned", "properties": {"cart_id": "c1"}}),
        settings=settings,
        env=time_env,
        start_at=start,
    )

    failed = [e for e in result.timeline if e.kind == "failed"]
    assert [(e.step, e.offset) for e in failed][:1] == [("first_reminder", "1h")]
    assert failed[0].reason is not None
    assert "TemplateError" in failed[0].reason and "'items' is undefined" in failed[0].reason
    # The runtime records the step failed and goes on, as it would live.
    assert result.status == "completed"
