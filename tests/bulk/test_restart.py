"""A worker dies in the middle of a page; another one finishes the bulk enrollment, and
nobody is enrolled twice (dev server; journeys wait unexecuted, see conftest)."""

from __future__ import annotations

import asyncio

from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from journeyman.enrollments import EnrollmentService, KnownEnrollments
from persistence import Database, Enrollment
from tests.api.helpers import eventually
from tests.bulk.conftest import BulkSetup, bulk_setup, make_contacts
from tests.bulk.test_ten_thousand import enrolled_contacts
from workflows.contracts import StartJourneyRequest, StartJourneyResult, workflow_id_for

STALL_AFTER = 150


async def record_enrollments(setup: BulkSetup, journey: str, contact_ids: list[str]) -> int:
    """The rows the journeys' own lifecycle records would have written, for those of the
    contacts that were started; returns how many."""
    recorded = 0
    async with setup.database.session() as session:
        for contact_id in contact_ids:
            workflow_id = workflow_id_for(journey, contact_id)
            try:
                run = await setup.client.get_workflow_handle(workflow_id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise
            recorded += 1
            session.add(
                Enrollment(
                    run_id=run.run_id,
                    workflow_id=workflow_id,
                    journey=journey,
                    version=1,
                    contact_id=contact_id,
                    entered_at=run.start_time,
                )
            )
        await session.commit()
    return recorded


class StallingEnrollments(EnrollmentService):
    """Starts the first `STALL_AFTER` contacts, then hangs: a worker stuck mid-page."""

    made = 0

    async def start(
        self, request: StartJourneyRequest, *, known: KnownEnrollments | None = None
    ) -> StartJourneyResult:
        if StallingEnrollments.made >= STALL_AFTER:
            await asyncio.Event().wait()
        StallingEnrollments.made += 1
        return await super().start(request, known=known)


async def test_a_worker_dying_mid_page_enrolls_nobody_twice(
    dev_env: WorkflowEnvironment, database: Database, database_url: str, journey: str
) -> None:
    setup = bulk_setup(dev_env.client, database, database_url)
    ids = await make_contacts(database, 400)
    StallingEnrollments.made = 0
    async with setup.worker(enrollments=setup.enrollments(StallingEnrollments)):
        started = await setup.service.start(journey, contact_ids=ids, starts_per_second=100)
        # Page 1 (100) went through; page 2 hangs half-way, 50 of its contacts started.
        await eventually(
            lambda: setup.service.progress(journey, started.id),
            lambda progress: progress.done == 100,
        )
        await eventually(lambda: asyncio.sleep(0, StallingEnrollments.made), lambda n: n == 150)
    # The first worker is gone (its page cancelled mid-way). Had the journeys run, they would
    # have recorded their enrollments by now: `welcome_series` allows no re-entry, so the
    # retried page is refused by those rows; it must still count its own runs as started.
    assert await record_enrollments(setup, journey, ids[:200]) >= 100
    # A fresh worker takes over.
    async with setup.worker():
        handle = setup.client.get_workflow_handle(started.workflow_id)
        await asyncio.wait_for(handle.result(), timeout=60)
        final = await setup.service.progress(journey, started.id)

    assert final.status == "completed"
    # The retried page found its own 50 runs and counted them started, not skipped.
    assert (final.total, final.done, final.started, final.failed) == (400, 400, 400, 0)
    assert final.skipped == {}
    contacts = await eventually(
        lambda: enrolled_contacts(setup), lambda found: len(found) >= 400, within=20
    )
    assert sorted(contacts) == ids
