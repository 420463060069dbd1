"""A contact's 90 days, in simulated time: lead nurturing's longest path, then onboarding.

The longest journey, `lead_nurturing`, spans at most 81 days (a lead that qualifies at the end
of its window, attends the demo at the end of its own, and never orders). The 90-day timeline
of issue 8's "a 90-day journey test under 0.5 s" is a lead that qualifies on day 36, attends
the demo on day 42 and orders on day 76: the order converts and hands the contact to
onboarding, which this test really starts, and whose last email goes out on day 90.

`python -m bench testspeed` times this test (the target is its wall time, not asserted here).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from workflows.contracts import (
    START_JOURNEY,
    EnrollmentInput,
    EnrollmentResult,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.lead_nurturing import LeadNurturing
from workflows.onboarding import Onboarding
from workflows.runtime import journey_search_attributes

WHITEPAPER = {"title": "The B2B nurture playbook", "url": "/whitepapers/nurture-playbook.pdf"}
QUALIFIED_ON = timedelta(days=36)
DEMO_ON = timedelta(days=42)
ORDER_ON = timedelta(days=76)
TIMELINE = [
    ("whitepaper", timedelta(0)),
    ("case_study", timedelta(days=3)),
    ("pricing_invite", timedelta(days=7)),
    ("demo_invite", QUALIFIED_ON),
    ("demo_thanks", DEMO_ON),
    ("proposal", DEMO_ON + timedelta(days=3)),
    ("post_demo_check_in", DEMO_ON + timedelta(days=7)),
    # Onboarding, started by the hand-off on the order.
    ("getting_started", ORDER_ON),
    ("tips", ORDER_ON + timedelta(days=7)),
    ("check_in", ORDER_ON + timedelta(days=14)),
]


async def test_ninety_days_from_whitepaper_to_the_last_onboarding_email(
    time_env: WorkflowEnvironment,
) -> None:
    # The time-skipping client's handle: awaiting its result lets the server skip time.
    started: list[WorkflowHandle[object, EnrollmentResult]] = []

    @activity.defn(name=START_JOURNEY)
    async def start_onboarding(request: StartJourneyRequest) -> StartJourneyResult:
        # The hand-off really starts onboarding, on the worker of this test (its queue), as
        # `EnrollmentService.start` does for a `reentry = "never"` journey: a plain start.
        workflow_id = workflow_id_for(request.journey, request.contact_id)
        handle = await time_env.client.start_workflow(
            Onboarding.workflow_type(),
            EnrollmentInput(contact_id=request.contact_id, trigger=request.trigger),
            id=workflow_id,
            task_queue=activity.info().task_queue,
            search_attributes=journey_search_attributes(Onboarding, request.contact_id),
            result_type=EnrollmentResult,
        )
        started.append(handle)
        return StartJourneyResult(
            journey=request.journey, workflow_id=workflow_id, action="started"
        )

    async with enrolled(
        time_env,
        LeadNurturing,
        trigger_properties=WHITEPAPER,
        extra_workflows=(Onboarding,),
        start_override=start_onboarding,
    ) as run:
        await run.advance(QUALIFIED_ON)
        await run.event("lead.qualified")
        await run.advance(DEMO_ON - QUALIFIED_ON)
        await run.event("demo_attended")
        await run.advance(ORDER_ON - DEMO_ON)
        await run.event("order_placed", order_id="o-90", total=4800)
        nurturing = await run.result()
        (onboarding_run,) = started
        onboarding = await onboarding_run.result()

    assert (nurturing.status, nurturing.ended_by) == ("converted", "event:order_placed")
    assert onboarding.status == "completed"
    assert [(s.step, s.after) for s in run.capture.sends] == TIMELINE
    assert len(run.capture.notifications) == 1
    ended = run.capture.lifecycle[-1]
    assert (ended.journey, ended.kind, ended.status) == ("onboarding", "ended", "completed")
    assert run.capture.started_at is not None
    assert ended.at - run.capture.started_at >= timedelta(days=90)
