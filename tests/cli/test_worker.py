"""The worker as `journeyman worker` builds it: every journey, every activity, really wired."""

from __future__ import annotations

import asyncio
import uuid
from types import MethodType
from typing import cast

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities
from journeyman.crm.contracts import PUSH_DUE
from journeyman.enrollments import EnrollmentService
from journeyman.scoring.contracts import APPLY_SCORE_EVENT, CHECK_SCORE_DECAY
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from journeyman.temporal import ensure_search_attributes, missing_search_attributes
from persistence import Contact, Database
from tests.conftest import binary
from worker import wired_worker
from workflows import catalog
from workflows.bulk_enrollment import BULK_COUNT, BULK_PAGE, BULK_START, BulkEnrollment
from workflows.contracts import (
    IN_SEGMENT,
    NEXT_LOCAL_TIME,
    NOTIFY_SALES,
    READ_CONTACT,
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    SEARCH_ATTRIBUTES,
    SEND_MESSAGE,
    START_JOURNEY,
    UPDATE_CONTACT,
    StartJourneyRequest,
)
from workflows.crm_sync import CrmSync
from workflows.lead_scoring import LeadScorer


def _worker(
    client: Client, settings: Settings, database: Database, http: httpx.AsyncClient
) -> Worker:
    """Built as `run_worker` builds it, from real parts (the CRM connector too)."""
    return wired_worker(client, settings, database, http)


async def test_build_worker_registers_every_catalog_journey_and_activity(
    time_env: WorkflowEnvironment, database: Database, task_queue: str
) -> None:
    settings = Settings(task_queue=task_queue)
    async with httpx.AsyncClient() as http:
        config = _worker(time_env.client, settings, database, http).config()
    assert config["task_queue"] == task_queue
    # No CRM configured: the scorer and bulk enrollment, but no CRM sync (notify_sales still
    # works, by email).
    assert set(config["workflows"]) == {*catalog.all_versions(), LeadScorer, BulkEnrollment}
    by_name = {
        getattr(fn, "__temporal_activity_definition").name: fn for fn in config["activities"]
    }
    assert set(by_name) == {
        SEND_MESSAGE,
        READ_CONTACT,
        START_JOURNEY,
        RECORD_LIFECYCLE,
        RECORD_LIFECYCLE_BATCH,
        NEXT_LOCAL_TIME,
        NOTIFY_SALES,
        APPLY_SCORE_EVENT,
        CHECK_SCORE_DECAY,
        IN_SEGMENT,
        UPDATE_CONTACT,
        BULK_COUNT,
        BULK_PAGE,
        BULK_START,
    }
    # Every channel a journey may use has its adapter.
    acts = cast(MethodType, by_name[SEND_MESSAGE]).__self__
    assert isinstance(acts, JourneyActivities)
    assert set(acts.senders) == {"email", "sms", "push", "webhook"}


async def test_worker_tuning_comes_from_the_settings(
    time_env: WorkflowEnvironment, database: Database, task_queue: str
) -> None:
    settings = Settings(
        task_queue=task_queue,
        worker_max_concurrent_activities=7,
        worker_max_concurrent_workflow_tasks=9,
        worker_max_cached_workflows=11,
        worker_max_task_queue_activities_per_second=2.5,
    )
    async with httpx.AsyncClient() as http:
        config = _worker(time_env.client, settings, database, http).config()
    assert (
        config["max_concurrent_activities"],
        config["max_concurrent_workflow_tasks"],
        config["max_cached_workflows"],
        config["max_task_queue_activities_per_second"],
    ) == (7, 9, 11, 2.5)
    defaults = Settings(task_queue=f"{task_queue}-defaults")
    async with httpx.AsyncClient() as http:
        config = _worker(time_env.client, defaults, database, http).config()
    assert config["max_task_queue_activities_per_second"] is None  # 0 means no cap


async def test_with_a_crm_the_worker_also_runs_the_crm_sync(
    time_env: WorkflowEnvironment, database: Database, task_queue: str
) -> None:
    settings = Settings(
        task_queue=task_queue, crm="webhook", crm_webhook_url="http://127.0.0.1:9/crm"
    )
    async with httpx.AsyncClient() as http:
        config = _worker(time_env.client, settings, database, http).config()
    assert CrmSync in set(config["workflows"])
    names = {getattr(fn, "__temporal_activity_definition").name for fn in config["activities"]}
    assert PUSH_DUE in names


async def test_built_worker_runs_a_journey_end_to_end(
    dev_env: WorkflowEnvironment, database: Database, task_queue: str
) -> None:
    """Started the way the API starts it, a welcome series sends its first email for real."""
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    with SmtpSink("127.0.0.1", 0) as sink:
        # No quiet hours: the welcome email must go out whatever the time of day.
        settings = Settings(
            task_queue=task_queue, smtp_host=sink.host, smtp_port=sink.port, quiet_hours=""
        )
        async with database.session() as session:
            session.add(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
            await session.commit()
        async with httpx.AsyncClient() as http, _worker(dev_env.client, settings, database, http):
            started = await EnrollmentService(
                client=dev_env.client, database=database, settings=settings
            ).start(StartJourneyRequest(journey="welcome_series", contact_id=contact_id))
            assert started.action == "started"
            received = await sink.wait_for(1, within=20)
    assert [str(m["To"]) for m in received] == [f"{contact_id}@example.com"]


async def test_ensure_search_attributes_registers_only_what_is_missing() -> None:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal")
    ) as env:
        expected = sorted(key.name for key in SEARCH_ATTRIBUTES)
        assert sorted(await missing_search_attributes(env.client, "default")) == expected
        assert await ensure_search_attributes(env.client, "default") == expected
        # The server applies additions asynchronously; then a second call has nothing to do.
        for _ in range(50):
            if not await missing_search_attributes(env.client, "default"):
                break
            await asyncio.sleep(0.1)
        assert await ensure_search_attributes(env.client, "default") == []
