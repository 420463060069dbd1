"""The bulk enrollment workflow with time skipping: pacing, progress, continue-as-new, unknown
ids. The enrolled journeys go to a queue no worker polls (see conftest)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from journeyman.enrollments import EnrollmentService, KnownEnrollments
from persistence import Database, Enrollment
from tests.bulk.conftest import bulk_setup, make_contacts, start_list
from workflows.bulk_enrollment import PROGRESS_QUERY
from workflows.contracts import (
    BulkProgress,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.runtime import Journey


async def test_pacing_holds_the_rate_and_progress_is_consistent_mid_way(
    time_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 500)
    async with setup.parked_journeys(), setup.worker():
        handle = await start_list(setup, journey, ids, 50)
        snapshots: list[BulkProgress] = []

        async def poll() -> None:
            while True:
                snapshots.append(await handle.query(PROGRESS_QUERY, result_type=BulkProgress))
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        result = await handle.result()
        poller.cancel()

    assert result.status == "completed"
    assert (result.total, result.done, result.started, result.failed) == (500, 500, 500, 0)
    assert result.skipped == {}
    assert result.started_at is not None and result.finished_at is not None
    # Ten pages of fifty, each owed its second: at least 10 s of workflow time.
    elapsed = (result.finished_at - result.started_at).total_seconds()
    assert elapsed >= 10.0
    assert result.rate <= 50.0 and result.rate > 40.0
    assert result.pages == 10
    mid = [s for s in snapshots if 0 < s.done < 500]
    assert mid, "no progress seen mid-way"
    dones = [s.done for s in snapshots]
    assert dones == sorted(dones)
    for snapshot in mid:
        assert snapshot.total == 500 and snapshot.status == "running"
        assert snapshot.done == snapshot.started  # no skips here
        assert snapshot.rate <= 50.0
        assert snapshot.eta_seconds is not None
        # What is left at the measured rate (or the limit before anything is measured).
        rate = snapshot.rate or 50.0
        assert abs(snapshot.eta_seconds - (500 - snapshot.done) / rate) < 1e-6


async def test_continue_as_new_carries_cursor_and_counters(
    time_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 47)
    async with setup.parked_journeys(), setup.worker():
        # Pages of 5, a new run every 2 pages: 10 pages over 5 runs.
        handle = await start_list(setup, journey, ids, 5, pages_per_run=2)
        result = await handle.result()
        first = await time_env.client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id
        ).describe()
        latest = await time_env.client.get_workflow_handle(handle.id).describe()

    assert (result.total, result.done, result.started, result.pages) == (47, 47, 47, 10)
    assert result.runs == 5
    assert first.status is not None and first.status.name == "CONTINUED_AS_NEW"
    assert latest.run_id != handle.first_execution_run_id
    # Counted from the first run's start, across runs: 47 contacts at 5/s take >= 9.4 s.
    assert result.started_at is not None and result.finished_at is not None
    assert (result.finished_at - result.started_at).total_seconds() >= 47 / 5
    assert result.rate <= 5.0
    assert result.status == "completed" and result.eta_seconds == 0.0


async def test_ids_that_are_no_contact_or_already_enrolled_are_skipped_with_reasons(
    time_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 20)
    ghosts = [f"ghost-{n}" for n in range(5)]
    async with setup.parked_journeys(), setup.worker():
        first = await (await start_list(setup, journey, ids[:8], 100)).result()
        mixed = ids[:8] + ghosts + ids[8:]
        again = await (await start_list(setup, journey, mixed, 100)).result()

    assert (first.started, first.skipped) == (8, {})
    assert again.total == again.done == 25
    assert again.started == 12
    # welcome_series allows no re-entry; the ghosts are no contacts at all.
    assert again.skipped == {"reentry_never": 8, "unknown_contact": 5}
    assert again.failed == 0 and again.errors == []


class CountedEnrollments(EnrollmentService):
    """Counts the re-entry checks that went to the database one contact at a time."""

    one_by_one = 0

    async def _earlier_triggers(
        self, cls: type[Journey], contact_id: str, key: str | None
    ) -> list[str | None]:
        CountedEnrollments.one_by_one += 1
        return await super()._earlier_triggers(cls, contact_id, key)


async def test_a_page_reads_its_enrollment_rows_at_once_and_skips_the_enrolled(
    time_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    """Contacts enrolled long ago (a row, and no run left on the server after its retention)
    are refused from the page's one read of the rows, not a query per contact."""
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 12)
    async with database.session() as session:
        for contact_id in ids[:5]:
            session.add(
                Enrollment(
                    run_id=f"gone-{contact_id}",
                    workflow_id=workflow_id_for(journey, contact_id),
                    journey=journey,
                    version=1,
                    contact_id=contact_id,
                    status="completed",
                    entered_at=datetime.now(UTC) - timedelta(days=400),
                )
            )
        await session.commit()
    CountedEnrollments.one_by_one = 0
    enrollments = setup.enrollments(CountedEnrollments)
    async with setup.parked_journeys(), setup.worker(enrollments):
        progress = await (await start_list(setup, journey, ids, 100)).result()

    assert (progress.started, progress.skipped) == (7, {"reentry_never": 5})
    assert CountedEnrollments.one_by_one == 0
    # Refused without a start: no run was made for the contacts enrolled before.
    for contact_id in ids[:5]:
        with pytest.raises(RPCError):
            await time_env.client.get_workflow_handle(
                workflow_id_for(journey, contact_id)
            ).describe()


async def test_a_journey_that_no_longer_exists_fails_the_bulk_enrollment(
    time_env: WorkflowEnvironment, database: Database, database_url: str
) -> None:
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 3)
    async with setup.parked_journeys(), setup.worker():
        # As a schedule declared before the journey was removed would start it.
        handle = await start_list(setup, "retired_journey", ids, 10)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        _, bulk_id = handle.id.rsplit(":", 1)
        progress = await setup.service.progress("retired_journey", bulk_id)
    activity_failure = failed.value.cause
    assert isinstance(activity_failure, ActivityError)
    assert "unknown journey 'retired_journey'" in str(activity_failure.cause)
    assert progress.status == "failed"
    assert (progress.total, progress.done, progress.started) == (3, 0, 0)


class FlakyEnrollments(EnrollmentService):
    """The database goes away for the first few starts, then comes back."""

    outage_left = 0

    async def start(
        self, request: StartJourneyRequest, *, known: KnownEnrollments | None = None
    ) -> StartJourneyResult:
        if FlakyEnrollments.outage_left > 0:
            FlakyEnrollments.outage_left -= 1
            raise OperationalError("SELECT 1", None, ConnectionError("database restarting"))
        return await super().start(request, known=known)


async def test_an_outage_delays_the_page_and_loses_nothing(
    time_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    setup = bulk_setup(time_env.client, database, database_url)
    ids = await make_contacts(database, 30)
    FlakyEnrollments.outage_left = 3
    async with setup.parked_journeys(), setup.worker(setup.enrollments(FlakyEnrollments)):
        result = await (await start_list(setup, journey, ids, 10)).result()
    assert FlakyEnrollments.outage_left == 0
    assert (result.done, result.started, result.failed, result.skipped) == (30, 30, 0, {})
