"""Bulk enrollment against real parts: the migrated database, a Temporal server (time-skipping
for pacing, the dev server for scale and restarts) and a worker running the bulk workflow.

The bulk workflow and its activities run on one task queue; the journeys it starts go to
another one that no worker polls, so they sit unexecuted (started, visible, countable) and
the tests measure the bulk enrollment alone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.bulk import bulk_parts
from journeyman.bulk import BulkEnrollmentService
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import Contact, Database
from workflows.bulk_enrollment import BulkEnrollment
from workflows.contracts import BulkEnrollmentInput, BulkProgress


@dataclass
class BulkSetup:
    """Where things run: `settings` (the bulk workflow's queue, for the service and CLI)
    and `journeys_queue` (where the enrolled journeys wait, unpolled)."""

    client: Client
    database: Database
    settings: Settings
    journeys_queue: str

    @property
    def service(self) -> BulkEnrollmentService:
        return BulkEnrollmentService(
            client=self.client, database=self.database, settings=self.settings
        )

    def enrollments(self, kind: type[EnrollmentService] = EnrollmentService) -> EnrollmentService:
        journeys = self.settings.model_copy(update={"task_queue": self.journeys_queue})
        return kind(client=self.client, database=self.database, settings=journeys)

    @asynccontextmanager
    async def parked_journeys(self) -> AsyncIterator[None]:
        """On the time-skipping server a workflow task nobody picks up holds the clock still,
        so there the journeys get a worker after all: every journey type, parked (it waits
        forever and does nothing), standing in for the real journeys."""
        async with Worker(
            self.client,
            task_queue=self.journeys_queue,
            workflows=[ParkedJourney],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            yield

    @asynccontextmanager
    async def worker(
        self, enrollments: EnrollmentService | None = None, **options: object
    ) -> AsyncIterator[Worker]:
        parts = bulk_parts(self.database, self.settings, enrollments or self.enrollments())
        async with Worker(
            self.client,
            task_queue=self.settings.task_queue,
            workflows=parts.workflows,
            activities=parts.activities,
            **options,  # type: ignore[arg-type]
        ) as worker:
            yield worker


@workflow.defn(dynamic=True)
class ParkedJourney:
    """Any workflow type: waits forever, doing nothing."""

    @workflow.run
    async def run(self, _: Sequence[RawValue]) -> None:
        await workflow.wait_condition(lambda: False)


def bulk_setup(client: Client, database: Database, database_url: str) -> BulkSetup:
    tag = uuid.uuid4().hex[:8]
    return BulkSetup(
        client=client,
        database=database,
        settings=Settings(database_url=database_url, task_queue=f"bulk-{tag}"),
        journeys_queue=f"journeys-{tag}",
    )


async def make_contacts(database: Database, count: int, prefix: str | None = None) -> list[str]:
    """`count` new contacts with ids `<prefix>-00000`...: sorted, unique to the caller."""
    prefix = prefix or f"b{uuid.uuid4().hex[:8]}"
    ids = [f"{prefix}-{n:05d}" for n in range(count)]
    now = datetime.now(UTC)
    rows = [
        {"contact_id": contact_id, "attributes": {}, "created_at": now, "updated_at": now}
        for contact_id in ids
    ]
    async with database.session() as session:
        connection = await session.connection()
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(Contact), rows[start : start + 5000])
        await session.commit()
    return ids


async def start_list(
    setup: BulkSetup, journey: str, contact_ids: list[str], rate: float, **options: Any
) -> WorkflowHandle[Any, BulkProgress]:
    """Store the list and start the workflow through the client itself: on the time-skipping
    server, only a handle from `start_workflow` skips time while its result is awaited."""
    list_id, _ = await setup.service.create_list(contact_ids)
    return await setup.client.start_workflow(
        BulkEnrollment.run,
        BulkEnrollmentInput(journey=journey, list_id=list_id, starts_per_second=rate, **options),
        id=f"bulk:{journey}:{uuid.uuid4().hex}",
        task_queue=setup.settings.task_queue,
    )


@pytest.fixture
def journey() -> str:
    # `never` re-entry and no key: one enrollment per contact, ever.
    return "welcome_series"
