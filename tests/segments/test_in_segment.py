"""`in_segment` inside a journey, in the time-skipping server, with the real activity and DB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.segments import SegmentActivities, segment_parts
from journeyman.settings import Settings
from persistence import Contact, Database, LeadScore
from tests.journeys.harness import Capture
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    EVENT_SIGNAL,
    ContactSnapshot,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    SegmentCheck,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes

from .conftest import Generated, unseed
from .journeys import ChecksAfterADay, ChecksAfterFortyDays, ChecksUnknownSegment

SETTINGS = Settings(score_half_life_days=30, score_qualify_at=50, score_disqualify_below=30)
PREFIX = "segact-"


@pytest.fixture(autouse=True)
async def _cleanup(database: Database) -> AsyncIterator[None]:
    yield
    await unseed(Generated(database, PREFIX))


async def _run(
    env: WorkflowEnvironment, database: Database, journey: type[Journey], points: float | None
) -> tuple[EnrollmentResult, Capture]:
    """Enroll a fresh contact; once the run started, give it `points` as of the run's start."""
    contact_id = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    await database.insert_once(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
    capture = Capture(contact=ContactSnapshot(contact_id=contact_id, exists=True))
    task_queue = f"segments-{uuid.uuid4().hex[:8]}"
    trigger = Event(id=uuid.uuid4().hex, contact_id=contact_id, name="go")
    parts = segment_parts(database, SETTINGS)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[journey],
        activities=[*capture.activities, *parts.activities],
    ):
        handle = await env.client.start_workflow(
            journey.workflow_type(),
            EnrollmentInput(contact_id=contact_id, trigger=trigger),
            id=workflow_id_for(journey.name, contact_id),
            task_queue=task_queue,
            search_attributes=journey_search_attributes(journey, contact_id),
            result_type=EnrollmentResult,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[trigger],
        )
        if points is not None:
            started = (await handle.describe()).start_time
            await database.insert_once(
                LeadScore(contact_id=contact_id, points=points, as_of=started)
            )
        return await handle.result(), capture


async def test_a_journey_branches_on_membership_at_its_own_clock(
    time_env: WorkflowEnvironment, database: Database
) -> None:
    # 60 points decay with a 30-day half-life: about 59 a day later, about 24 after 40 days.
    result, capture = await _run(time_env, database, ChecksAfterADay, points=60)
    assert result.status == "completed"
    assert capture.templates == ["member"]
    assert [s.outcome for s in result.steps if s.name == "check"] == ["member"]

    result, capture = await _run(time_env, database, ChecksAfterFortyDays, points=60)
    assert capture.templates == ["outsider"]
    assert [s.outcome for s in result.steps if s.name == "check"] == ["not a member"]

    result, capture = await _run(time_env, database, ChecksAfterADay, points=None)
    assert capture.templates == ["outsider"]


async def test_an_unknown_segment_fails_the_enrollment_without_retrying(
    time_env: WorkflowEnvironment, database: Database
) -> None:
    with pytest.raises(WorkflowFailureError) as caught:
        await _run(time_env, database, ChecksUnknownSegment, points=None)
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    # Not retried: the definition is wrong, a retry cannot fix it.
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ERR_JOURNEY_DEFINITION
    assert "unknown segment 'no_such_segment'" in cause.message


async def test_the_activity_answers_for_one_contact_at_the_given_moment(
    database: Database,
) -> None:
    contact_id = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    other = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    at = datetime(2030, 1, 1, tzinfo=UTC)
    for cid in (contact_id, other):
        await database.insert_once(Contact(contact_id=cid))
    await database.insert_once(LeadScore(contact_id=other, points=99, as_of=at))
    activities = SegmentActivities(database=database, settings=SETTINGS)
    answer = await activities.in_segment(SegmentCheck(contact_id, "qualified_leads", at))
    assert (answer.segment, answer.member) == ("qualified_leads", False)
    answer = await activities.in_segment(SegmentCheck(other, "qualified_leads", at))
    assert answer.member
