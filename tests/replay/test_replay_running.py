"""`replay_running`: running enrollments fetched from the dev server and replayed."""

from __future__ import annotations

import asyncio
import uuid

from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from journeyman.replay import (
    ReplayOutcome,
    ReplayReport,
    current_workflows,
    replay_running,
    running_query,
)
from tests.replay.conftest import Running
from tests.replay.probe_journeys import BROKEN_CODE, PROBE, PROBE_CODE
from workflows import catalog
from workflows.contracts import JOURNEY_VERSION
from workflows.crm_sync import CrmSync
from workflows.lead_scoring import LeadScorer


async def test_running_enrollments_replay_against_the_code_they_run_on(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    report = await replay_running(dev_env.client, journey=PROBE, workflows=PROBE_CODE)

    assert {outcome.workflow_id for outcome in report.outcomes} == set(running.probes)
    assert {outcome.status for outcome in report.outcomes} == {"ok"}
    assert (report.ok, report.checked, report.failed) == (True, 3, 0)
    assert [(s.workflow_type, s.checked, s.failed) for s in report.by_type()] == [
        ("replay_probe.v1", 2, 0),
        ("replay_probe.v2", 1, 0),
    ]


async def test_a_step_moved_without_a_patch_fails_the_enrollments_it_would_break(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    report = await replay_running(dev_env.client, journey=PROBE, workflows=BROKEN_CODE)

    assert not report.ok
    assert {outcome.workflow_id for outcome in report.failures} == set(running.v1)
    assert all("nondetermin" in (outcome.error or "").lower() for outcome in report.failures)
    [v2] = [outcome for outcome in report.outcomes if outcome.version == 2]
    assert (v2.workflow_id, v2.status) == (running.v2[0], "ok")
    assert report.as_json()["failed_workflow_ids"] == [o.workflow_id for o in report.failures]


async def test_the_version_filter_checks_that_version_alone(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    v2 = await replay_running(dev_env.client, journey=PROBE, version=2, workflows=BROKEN_CODE)
    v1 = await replay_running(dev_env.client, journey=PROBE, version=1, workflows=BROKEN_CODE)

    assert [(o.workflow_id, o.status) for o in v2.outcomes] == [(running.v2[0], "ok")]
    assert v2.ok
    assert sorted((o.workflow_id, o.status) for o in v1.outcomes) == sorted(
        (workflow_id, "failed") for workflow_id in running.v1
    )


async def test_the_journey_filter_leaves_other_journeys_out(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    # The real welcome series against the current code. Other tests of the session leave
    # welcome series enrollments running too: narrowed to this one's contact, so the check
    # does not replay them all.
    contact_id = running.welcome.removeprefix("journey:welcome_series:")
    report = await replay_running(dev_env.client, journey="welcome_series", contact_id=contact_id)

    mine = [outcome for outcome in report.outcomes if outcome.workflow_id == running.welcome]
    assert [(o.status, o.journey, o.version) for o in mine] == [("ok", "welcome_series", 1)]
    assert {outcome.journey for outcome in report.outcomes} == {"welcome_series"}
    assert not set(running.probes) & {outcome.workflow_id for outcome in report.outcomes}


async def test_an_enrollment_on_a_version_the_code_no_longer_has_fails(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    # The current code has no replay_probe at all: as if its versions had been deleted.
    report = await replay_running(dev_env.client, journey=PROBE)

    assert {outcome.workflow_id for outcome in report.failures} == set(running.probes)
    assert all("no workflow 'replay_probe.v" in (o.error or "") for o in report.failures)


async def test_a_workflow_of_another_application_is_skipped_not_failed(
    dev_env: WorkflowEnvironment,
) -> None:
    # No JourneyName: not an enrollment. A version number nobody else uses isolates it.
    version = 900_000 + uuid.uuid4().int % 99_999
    handle = await dev_env.client.start_workflow(
        "someone_elses_workflow",
        id=f"other-{uuid.uuid4().hex[:8]}",
        task_queue=f"nobody-polls-{uuid.uuid4().hex[:8]}",
        search_attributes=TypedSearchAttributes([SearchAttributePair(JOURNEY_VERSION, version)]),
    )
    try:
        report = await eventually_listed(dev_env, version)
    finally:
        await handle.terminate()

    assert [(o.workflow_id, o.status) for o in report.outcomes] == [(handle.id, "skipped")]
    assert (report.ok, report.checked, report.skipped) == (True, 0, 1)


async def eventually_listed(env: WorkflowEnvironment, version: int) -> ReplayReport:
    for _ in range(100):
        report = await replay_running(env.client, version=version)
        if report.outcomes:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError("never listed")


async def test_the_limit_caps_what_is_checked_and_the_report_says_so(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    report = await replay_running(dev_env.client, journey=PROBE, limit=1, workflows=PROBE_CODE)

    assert (len(report.outcomes), report.matched, report.limited) == (1, 3, True)
    assert report.outcomes[0].workflow_id in running.probes


async def test_progress_is_reported_after_each_enrollment(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    seen: list[tuple[str, int, int]] = []

    def progress(outcome: ReplayOutcome, done: int, total: int) -> None:
        seen.append((outcome.workflow_id, done, total))

    await replay_running(
        dev_env.client, journey=PROBE, workflows=PROBE_CODE, concurrency=2, progress=progress
    )

    assert [(done, total) for _, done, total in seen] == [(1, 3), (2, 3), (3, 3)]
    assert {workflow_id for workflow_id, _, _ in seen} == set(running.probes)


def test_the_current_code_is_every_journey_version_and_every_other_workflow() -> None:
    classes = current_workflows()

    assert set(catalog.all_versions()) <= set(classes)
    assert {LeadScorer, CrmSync} <= set(classes)
    assert len(classes) == len(set(classes))


def test_the_query_narrows_running_executions_to_a_journey_and_version() -> None:
    assert running_query() == 'ExecutionStatus = "Running"'
    assert running_query("abandoned_cart", 2) == (
        'ExecutionStatus = "Running" AND JourneyName = "abandoned_cart" AND JourneyVersion = 2'
    )
    assert running_query('a"b') == 'ExecutionStatus = "Running" AND JourneyName = "a\\"b"'
