"""Sends on their own task queue (JOURNEYMAN_SEND_TASK_QUEUE), so a provider quota caps sends
alone: the worker as `journeyman worker` builds it, on the dev server, with real SMTP."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database
from worker import build_send_worker, wired_worker
from workflows.contracts import Event, StartJourneyRequest

pytestmark = pytest.mark.integration


async def test_sends_go_through_their_own_queue_with_its_own_cap(
    dev_env: WorkflowEnvironment, database: Database, task_queue: str, http: httpx.AsyncClient
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
        await session.commit()
    client = dev_env.client
    with SmtpSink("127.0.0.1", 0) as sink:
        settings = Settings(
            task_queue=task_queue,
            send_task_queue=f"{task_queue}-sends",
            send_max_per_second=5,
            smtp_host=sink.host,
            smtp_port=sink.port,
            quiet_hours="",
        )
        service = EnrollmentService(client=client, database=database, settings=settings)
        worker = wired_worker(client, settings, database, http)
        sends = build_send_worker(client, settings, worker)
        assert sends is not None
        config = sends.config()
        assert config["task_queue"] == f"{task_queue}-sends"
        assert config["max_task_queue_activities_per_second"] == 5
        assert config["workflows"] == []
        async with worker, sends:
            started = await service.start(
                StartJourneyRequest(
                    journey="welcome_series",
                    contact_id=contact_id,
                    trigger=Event(id=uuid.uuid4().hex, contact_id=contact_id, name="signed_up"),
                )
            )
            (welcome,) = await sink.wait_for(1, within=20)
    assert welcome["To"] == f"{contact_id}@example.com"
    history = await client.get_workflow_handle(started.workflow_id).fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    queues = {a.activity_type.name: a.task_queue.name for a in scheduled}
    assert queues["send_message"] == f"{task_queue}-sends"
    # Everything else stays on the journeys' queue.
    assert {q for name, q in queues.items() if name != "send_message"} <= {task_queue}


async def test_without_the_setting_there_is_no_send_worker(
    dev_env: WorkflowEnvironment, database: Database, task_queue: str, http: httpx.AsyncClient
) -> None:
    settings = Settings(task_queue=task_queue)
    worker = wired_worker(dev_env.client, settings, database, http)
    assert build_send_worker(dev_env.client, settings, worker) is None
