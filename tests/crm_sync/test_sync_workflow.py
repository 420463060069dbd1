"""The `crm-sync` workflow on the time-skipping server: an outage delays the push, loses
nothing, and the workflow keeps going; starting it is idempotent."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.crm import build_crm_connector
from activities.crm_sync import crm_parts
from activities.rendering import TemplateRenderer
from journeyman.crm.contracts import CRM_SYNC_WORKFLOW_ID
from journeyman.crm.mapping import MappingError
from journeyman.crm.start import ensure_crm_sync
from journeyman.settings import Settings
from persistence import Database
from persistence.models import utcnow
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import email_of
from tests.crm_sync.helpers import Outbox, local_change, outbox_row
from workflows.crm_sync import MAX_ITERATIONS


async def test_the_sync_rides_out_an_outage_and_then_delivers_everything(
    time_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
    hubspot: FakeHubSpot,
    contact_id: str,
    clean_crm: None,
) -> None:
    parts = crm_parts(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=Outbox(),
        connector=build_crm_connector(settings, http),
    )
    assert len(parts.workflows) == 1 and len(parts.activities) == 2
    client = time_env.client
    hubspot.outage = True
    await local_change(database, contact_id, at=utcnow(), email=email_of(contact_id), phone="+1")
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=parts.workflows,
        activities=parts.activities,
    ):
        assert await ensure_crm_sync(client, settings)
        handle = client.get_workflow_handle(CRM_SYNC_WORKFLOW_ID)
        first_run = (await handle.describe()).run_id
        try:
            # Twice the same deployment starting: still one sync.
            assert await ensure_crm_sync(client, settings)
            assert (await handle.describe()).run_id == first_run

            await time_env.sleep(timedelta(minutes=3))
            tries = len(hubspot.calls("/batch/upsert"))
            assert tries >= 3, "the push was not retried through the outage"
            row = await outbox_row(database, contact_id)
            assert row is not None and row.status == "pending" and row.attempts >= 3
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

            # A change made during the outage waits with the rest.
            await local_change(database, contact_id, at=utcnow(), phone="+2")
            hubspot.outage = False
            await time_env.sleep(timedelta(minutes=6))
            stored = hubspot.contact(email_of(contact_id))
            assert stored is not None and stored.properties["phone"] == "+2"
            assert await outbox_row(database, contact_id) is None

            # Idle, it only looks at the outbox (no CRM calls), and keeps its history short.
            calls = len(hubspot.requests)
            await time_env.sleep(timedelta(seconds=10 * MAX_ITERATIONS))
            assert len(hubspot.requests) == calls
            description = await handle.describe()
            assert description.status == WorkflowExecutionStatus.RUNNING
            assert description.run_id != first_run
        finally:
            await handle.terminate("test over")


async def test_without_a_crm_no_sync_starts(
    time_env: WorkflowEnvironment, settings: Settings
) -> None:
    assert not await ensure_crm_sync(time_env.client, settings.model_copy(update={"crm": "none"}))
    with pytest.raises(MappingError, match="JOURNEYMAN_CRM_FIELDS"):
        await ensure_crm_sync(time_env.client, settings.model_copy(update={"crm_fields": "x"}))
