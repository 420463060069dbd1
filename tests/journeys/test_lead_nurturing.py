"""lead_nurturing, every branch, in simulated time: the welcome series, qualification at any
point, the sales notification, the demo (attended or not), and the hand-off to onboarding."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.rendering import TemplateRenderer
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import Database
from tests.api.helpers import API_KEY, event, parked_in, result_of
from tests.journeys.harness import Run, enrolled, render_sent
from tests.support import capturing_worker, running_app
from workflows import catalog
from workflows.contracts import (
    ERR_TEMPLATE,
    ERR_UNKNOWN_JOURNEY,
    NOTIFY_SALES,
    START_JOURNEY,
    ContactSnapshot,
    EnrollmentResult,
    Event,
    SalesNotification,
    SalesNotificationResult,
    StartJourneyRequest,
    StartJourneyResult,
)
from workflows.lead_nurturing import LeadNurturing

WHITEPAPER = {"title": "The B2B nurture playbook", "url": "/whitepapers/nurture-playbook.pdf"}
LEAD = {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines Ltd"}
SERIES = [
    ("whitepaper", timedelta(0)),
    ("case_study", timedelta(days=3)),
    ("pricing_invite", timedelta(days=7)),
]


def sent(run: Run) -> list[tuple[str, timedelta]]:
    return [(s.step, s.after) for s in run.capture.sends]


def step_at(run: Run, result: EnrollmentResult, step: str) -> timedelta:
    """When a step finished, counted from enrollment (rounded to the second)."""
    assert run.capture.started_at is not None
    (record,) = [s for s in result.steps if s.name == step]
    return timedelta(seconds=round((record.at - run.capture.started_at).total_seconds()))


def ended_after(run: Run) -> timedelta:
    first, last = run.capture.lifecycle[0], run.capture.lifecycle[-1]
    assert last.kind == "ended"
    return timedelta(seconds=round((last.at - first.at).total_seconds()))


async def test_series_of_three_over_a_week_then_completes_if_never_qualified(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        result = await run.result()

    assert result.status == "completed"
    assert sent(run) == SERIES
    assert run.capture.sends[0].context == {"whitepaper": WHITEPAPER}
    assert run.capture.notifications == []
    assert run.capture.starts == []
    # The pricing email, then 30 days in which the lead could still qualify.
    assert ended_after(run) == timedelta(days=37)
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["await_qualification"] == "timed out"


async def test_a_download_event_without_details_still_links_somewhere(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, LeadNurturing) as run:
        await run.result()

    assert run.capture.sends[0].context == {
        "whitepaper": {"title": "our whitepaper", "url": "/resources"}
    }


async def test_qualified_mid_series_stops_it_and_hands_the_lead_to_sales(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        attributes=LEAD,
        contact={"score": 57.6},
    ) as run:
        await run.advance(timedelta(days=4))
        await run.event("lead.qualified", score=57.6)
        await run.advance(timedelta(hours=1))
        state = await run.state()
        result = await run.result()

    assert sent(run) == [
        *SERIES[:2],
        ("demo_invite", timedelta(days=4)),
        # Nobody attended within 7 days: one reminder, and nothing after it.
        ("demo_reminder", timedelta(days=11)),
    ]
    (notification,) = run.capture.notifications
    assert step_at(run, result, "notify_sales") == timedelta(days=4)
    assert notification.step == "notify_sales"
    assert notification.subject == "Qualified lead: Ada Lovelace (Analytical Engines Ltd)"
    assert notification.template == "lead_nurturing/sales_alert"
    assert notification.context == {
        "whitepaper": WHITEPAPER,
        "score": 58,
        "how": "qualified during the welcome series, after the case study email",
    }
    assert state.current_step == "await_demo"
    assert state.waiting_for == ["demo_attended"]
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["pause_before_pricing"] == "received lead.qualified"
    assert outcomes["notify_sales"] == "task queued, email sent"
    assert outcomes["await_demo"] == "timed out"
    assert result.status == "completed"
    assert ended_after(run) == timedelta(days=41)


async def test_qualified_right_after_the_first_email(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        await run.advance(timedelta(days=1))
        await run.event("lead.qualified")
        await run.result()

    assert sent(run) == [
        SERIES[0],
        ("demo_invite", timedelta(days=1)),
        ("demo_reminder", timedelta(days=8)),
    ]
    assert run.capture.notifications[0].context["how"] == (
        "qualified during the welcome series, after the whitepaper email"
    )
    # Without a name on file the subject names the lead by email.
    assert run.capture.notifications[0].subject == f"Qualified lead: {run.contact_id}@example.com"


async def test_qualified_after_the_series_within_30_days(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        await run.advance(timedelta(days=20))
        await run.event("lead.qualified")
        await run.result()

    assert sent(run) == [
        *SERIES,
        ("demo_invite", timedelta(days=20)),
        ("demo_reminder", timedelta(days=27)),
    ]
    assert run.capture.notifications[0].context["how"] == "qualified after the welcome series"


async def test_a_lead_already_qualified_at_download_goes_straight_to_sales(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        attributes=LEAD,
        contact={"qualified": True, "score": 81.2},
    ) as run:
        result = await run.result()

    assert sent(run) == [
        ("whitepaper", timedelta(0)),
        ("demo_invite", timedelta(0)),
        ("demo_reminder", timedelta(days=7)),
    ]
    (notification,) = run.capture.notifications
    assert notification.context["score"] == 81
    assert notification.context["how"] == "was already qualified at download"
    assert step_at(run, result, "notify_sales") == timedelta(0)
    assert [s.name for s in result.steps][:2] == ["whitepaper", "check_qualified"]
    assert result.status == "completed"
    assert ended_after(run) == timedelta(days=37)


async def test_attending_the_demo_gets_the_follow_up_sequence(
    time_env: WorkflowEnvironment,
) -> None:
    recording = "https://video.example.com/demos/r-42"
    async with enrolled(
        time_env, LeadNurturing, trigger_properties=WHITEPAPER, contact={"qualified": True}
    ) as run:
        await run.advance(timedelta(days=2))
        await run.event("demo_attended", recording_url=recording)
        result = await run.result()

    assert sent(run) == [
        ("whitepaper", timedelta(0)),
        ("demo_invite", timedelta(0)),
        ("demo_thanks", timedelta(days=2)),
        ("proposal", timedelta(days=5)),
        ("post_demo_check_in", timedelta(days=9)),
    ]
    assert run.capture.sends[2].context == {"recording_url": recording}
    assert result.status == "completed"
    # The check-in, then 30 days for the order.
    assert ended_after(run) == timedelta(days=39)


async def test_a_demo_without_a_recording_link_points_to_the_default_one(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env, LeadNurturing, trigger_properties=WHITEPAPER, contact={"qualified": True}
    ) as run:
        await run.advance(timedelta(days=1))
        await run.event("demo_attended")
        await run.result()

    (thanks,) = [s for s in run.capture.sends if s.step == "demo_thanks"]
    assert thanks.context == {"recording_url": "/demo/recording"}


async def test_a_second_qualification_does_not_notify_sales_again(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        await run.advance(timedelta(days=1))
        await run.event("lead.qualified")
        # Decay dropped the score and new engagement lifted it again: a second crossing.
        await run.advance(timedelta(days=2))
        await run.event("lead.qualified")
        result = await run.result()

    assert len(run.capture.notifications) == 1
    assert [s.step for s in run.capture.sends] == ["whitepaper", "demo_invite", "demo_reminder"]
    assert result.status == "completed"


@pytest.mark.parametrize(
    ("qualify_at", "order_at", "ended_in", "sends"),
    [
        (None, timedelta(days=2), "pause_before_case_study", ["whitepaper"]),
        (timedelta(days=1), timedelta(days=5), "await_demo", ["whitepaper", "demo_invite"]),
        (
            timedelta(days=1),
            timedelta(days=20),
            "await_order",
            ["whitepaper", "demo_invite", "demo_reminder"],
        ),
    ],
    ids=["during_series", "awaiting_demo", "after_the_reminder"],
)
async def test_an_order_at_any_point_converts_and_hands_off_to_onboarding(
    time_env: WorkflowEnvironment,
    qualify_at: timedelta | None,
    order_at: timedelta,
    ended_in: str,
    sends: list[str],
) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        if qualify_at is not None:
            await run.advance(qualify_at)
            await run.event("lead.qualified")
            order_at -= qualify_at
        await run.advance(order_at)
        await run.event("order_placed", event_id="order-evt-1", order_id="o-77", total=4800)
        result = await run.result()

    assert result.status == "converted"
    assert result.ended_by == "event:order_placed"
    assert [s.step for s in run.capture.sends] == sends
    (start,) = run.capture.starts
    assert start.journey == "onboarding"
    assert start.contact_id == run.contact_id
    assert start.key is None
    assert start.started_by == run.handle.id
    assert start.trigger is not None
    assert (start.trigger.id, start.trigger.name) == ("order-evt-1", "order_placed")
    assert start.trigger.properties == {"order_id": "o-77", "total": 4800}
    assert result.steps[-1].name == "hand_off_to_onboarding"
    assert result.steps[-1].outcome == "started onboarding"
    ended = run.capture.lifecycle[-1]
    assert (ended.kind, ended.status, ended.step) == ("ended", "converted", ended_in)
    # The hand-off is in the stats like any step, before the enrollment is recorded ended.
    assert run.capture.lifecycle[-2].step == "hand_off_to_onboarding"


async def test_unsubscribing_exits_without_a_hand_off(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, LeadNurturing, trigger_properties=WHITEPAPER) as run:
        await run.advance(timedelta(days=4))
        await run.event("unsubscribed", channel="email")
        result = await run.result()

    assert result.status == "exited"
    assert sent(run) == SERIES[:2]
    assert run.capture.starts == []
    assert run.capture.notifications == []


async def test_a_failed_hand_off_is_recorded_and_the_enrollment_still_converts(
    time_env: WorkflowEnvironment,
) -> None:
    @activity.defn(name=START_JOURNEY)
    async def unknown_journey(request: StartJourneyRequest) -> StartJourneyResult:
        raise ApplicationError(request.journey, type=ERR_UNKNOWN_JOURNEY, non_retryable=True)

    async with enrolled(
        time_env, LeadNurturing, trigger_properties=WHITEPAPER, start_override=unknown_journey
    ) as run:
        await run.advance(timedelta(days=1))
        await run.event("order_placed", order_id="o-1")
        result = await run.result()

    assert result.status == "converted"
    assert result.steps[-1].name == "hand_off_to_onboarding"
    assert result.steps[-1].outcome == f"failed: {ERR_UNKNOWN_JOURNEY}"


async def test_a_sales_notification_that_fails_for_good_does_not_stop_the_journey(
    time_env: WorkflowEnvironment,
) -> None:
    @activity.defn(name=NOTIFY_SALES)
    async def broken_template(request: SalesNotification) -> SalesNotificationResult:
        raise ApplicationError("sales_alert: 'score' is undefined", type=ERR_TEMPLATE)

    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        contact={"qualified": True},
        notify_override=broken_template,
    ) as run:
        result = await run.result()

    assert result.status == "completed"
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["notify_sales"] == f"failed: {ERR_TEMPLATE}"
    assert [s.step for s in run.capture.sends] == ["whitepaper", "demo_invite", "demo_reminder"]


async def test_notify_sales_outcome_says_when_no_crm_task_was_queued(
    time_env: WorkflowEnvironment,
) -> None:
    @activity.defn(name=NOTIFY_SALES)
    async def no_crm(request: SalesNotification) -> SalesNotificationResult:
        return SalesNotificationResult(request.notification_id, task_queued=False, email="sent")

    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        contact={"qualified": True},
        notify_override=no_crm,
    ) as run:
        result = await run.result()

    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["notify_sales"] == "no CRM task, email sent"


async def test_the_notification_id_is_stable_per_enrollment_and_step(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(
        time_env, LeadNurturing, trigger_properties=WHITEPAPER, contact={"qualified": True}
    ) as run:
        await run.result()
        description = await run.handle.describe()

    (notification,) = run.capture.notifications
    assert notification.workflow_id == f"journey:lead_nurturing:{run.contact_id}"
    assert notification.notification_id == (
        f"{notification.workflow_id}:{description.run_id}:notify_sales"
    )
    assert (notification.journey, notification.contact_id) == ("lead_nurturing", run.contact_id)


def test_routing_declarations() -> None:
    assert LeadNurturing in catalog.triggered_by("whitepaper_downloaded")
    assert LeadNurturing in catalog.listening_to("lead.qualified")
    assert LeadNurturing in catalog.listening_to("demo_attended")
    assert LeadNurturing in catalog.listening_to("order_placed")
    assert catalog.get(LeadNurturing.on_conversion_start or "").name == "onboarding"


# ----- templates: everything the journey sends renders with the context it passes ---------

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SETTINGS = Settings(
    public_url="https://shop.example.com/",
    email_from="Acme Outfitters <hello@shop.example.com>",
)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "sandboxed"])
def renderer(request: pytest.FixtureRequest) -> TemplateRenderer:
    return TemplateRenderer.from_settings(SETTINGS, sandboxed=request.param)


async def every_message(env: WorkflowEnvironment) -> list[Run]:
    """Runs that together send every template: the attended path and the missed one."""
    runs: list[Run] = []
    for attend in (True, False):
        async with enrolled(
            env, LeadNurturing, trigger_properties=WHITEPAPER, attributes=LEAD
        ) as run:
            await run.advance(timedelta(days=8))
            await run.event("lead.qualified")
            if attend:
                await run.advance(timedelta(days=1))
                await run.event("demo_attended", recording_url="/demos/r-1")
            await run.result()
        runs.append(run)
    return runs


async def test_every_template_renders_with_the_context_the_journey_passes(
    time_env: WorkflowEnvironment, renderer: TemplateRenderer
) -> None:
    runs = await every_message(time_env)

    rendered: set[str] = set()
    for run in runs:
        for message in run.capture.sends:
            email = render_sent(renderer, run, "lead_nurturing", message)
            assert email.subject and "\n" not in email.subject
            assert email.text.startswith("Hi Ada,")
            assert "<p>Hi Ada,</p>" in email.html
            assert email.html.lstrip().startswith("<!DOCTYPE html>")
            assert "https://shop.example.com/" in email.text
            for part in (email.subject, email.text, email.html):
                assert "None" not in part and "Undefined" not in part
            rendered.add(message.template)
    rendered.add(runs[0].capture.notifications[0].template)
    on_disk = {
        f"lead_nurturing/{path.name.split('.')[0]}"
        for path in (TEMPLATES / "lead_nurturing").iterdir()
    }
    assert rendered == on_disk


async def test_the_sales_alert_says_who_how_hot_and_what_they_did(
    time_env: WorkflowEnvironment, renderer: TemplateRenderer
) -> None:
    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        attributes=LEAD,
        contact={"email": "ada@engines.example", "score": 63.4},
    ) as run:
        await run.advance(timedelta(days=5))
        await run.event("lead.qualified")
        await run.result()

    (notification,) = run.capture.notifications
    email = renderer.render_email(
        notification.template,
        renderer.context(
            contact=run.capture.contact,
            event=None,
            journey="lead_nurturing",
            step=notification.step,
            step_context=notification.context,
        ),
    )
    assert email.subject == ("Qualified lead: Ada Lovelace (Analytical Engines Ltd), score 63")
    for part in (email.text, email.html):
        for fact in (
            "Ada Lovelace",
            "ada@engines.example",
            "Analytical Engines Ltd",
            "63",
            run.contact_id,
            "The B2B nurture playbook",
            "qualified during the welcome series, after the case study email",
        ):
            assert fact in part
    # The plain text is the CRM task's body: no unsubscribe footer there.
    assert "Unsubscribe" not in email.text


def test_the_sales_alert_copes_with_a_lead_we_know_little_about(
    renderer: TemplateRenderer,
) -> None:
    context = renderer.context(
        contact=ContactSnapshot(contact_id="c-anon", exists=True),
        event=None,
        journey="lead_nurturing",
        step="notify_sales",
        step_context={
            "whitepaper": WHITEPAPER,
            "score": 50,
            "how": "was already qualified at download",
        },
    )
    email = renderer.render_email("lead_nurturing/sales_alert", context)

    assert email.subject == "Qualified lead: c-anon, score 50"
    assert "(no name on file)" in email.text
    assert "Email:    (none on file)" in email.text
    for part in (email.subject, email.text, email.html):
        assert "None" not in part and "Undefined" not in part


# ----- end to end: the API, the dev server and the real start activity ---------------------


async def test_an_order_through_the_api_converts_and_really_starts_onboarding(
    dev_env: WorkflowEnvironment, database: Database, database_url: str, task_queue: str
) -> None:
    """The order is routed to the running enrollment, which converts and hands off through
    the real `start_journey` (EnrollmentService): onboarding runs with the order as trigger,
    and a later CRM "customer" change does not onboard the contact twice."""
    settings = Settings(database_url=database_url, task_queue=task_queue, api_keys=[API_KEY])
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    lead_id = f"journey:lead_nurturing:{contact_id}"
    onboarding_id = f"journey:onboarding:{contact_id}"
    async with (
        capturing_worker(dev_env.client, database, settings) as sends,
        running_app(settings, dev_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api,
    ):
        await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
        download = await api.post(
            "/v1/events", json=event(contact_id, "whitepaper_downloaded", **WHITEPAPER)
        )
        await parked_in(dev_env.client, lead_id, "pause_before_case_study")
        order_event = event(contact_id, "order_placed", order_id="o-77")
        order = await api.post("/v1/events", json=order_event)
        lead = await result_of(dev_env.client, lead_id)
        await parked_in(dev_env.client, onboarding_id, "before_tips")
        # What the CRM inbound webhook routes when the CRM marks the contact a customer (the
        # public events API refuses `lifecycle.*`: Journeyman emits those itself).
        enrollments = EnrollmentService(client=dev_env.client, database=database, settings=settings)
        customer = await enrollments.route(
            Event(id=uuid.uuid4().hex, contact_id=contact_id, name="lifecycle.customer")
        )

    assert [(j["journey"], j["action"]) for j in download.json()["journeys"]] == [
        ("lead_nurturing", "started")
    ]
    assert ("lead_nurturing", lead_id, "signalled") in {
        (j["journey"], j["workflow_id"], j["action"]) for j in order.json()["journeys"]
    }
    assert lead.status == "converted"
    assert (lead.steps[-1].name, lead.steps[-1].outcome) == (
        "hand_off_to_onboarding",
        "started onboarding",
    )
    getting_started = [s for s in sends.for_contact(contact_id) if s.journey == "onboarding"]
    assert [s.step for s in getting_started] == ["getting_started"]
    assert getting_started[0].trigger is not None
    assert getting_started[0].trigger.id == order_event["id"]
    assert getting_started[0].trigger.name == "order_placed"
    assert [(j.journey, j.action, j.reason) for j in customer] == [
        ("onboarding", "skipped", "reentry_never")
    ]
