"""The send rules' "now" is the workflow's clock: in the time-skipping server, skipped time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database
from workflows.contracts import QuietHours, SendRequest, SendResult

from .conftest import AddContact
from .later import DELAY, SendLater
from .sends import message_row, send_request


async def send_later(
    env: WorkflowEnvironment, task_queue: str, acts: JourneyActivities, request: SendRequest
) -> SendResult:
    async with Worker(
        env.client, task_queue=task_queue, workflows=[SendLater], activities=[acts.send_message]
    ):
        return await env.client.execute_workflow(
            SendLater.run,
            request,
            id=f"send-later-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )


async def test_a_send_a_month_later_is_decided_and_recorded_in_skipped_time(
    time_env: WorkflowEnvironment,
    task_queue: str,
    activities: JourneyActivities,
    database: Database,
    sink: SmtpSink,
    add_contact: AddContact,
) -> None:
    request = send_request(await add_contact())
    wall = datetime.now(UTC)

    result = await send_later(time_env, task_queue, activities, request)

    assert result.status == "sent"
    row = await message_row(database, request.message_id)
    created_at = row.created_at.replace(tzinfo=UTC)  # naive on SQLite
    assert created_at - wall >= DELAY
    assert result.sent_at is not None and result.sent_at >= created_at


async def test_quiet_hours_are_judged_at_the_skipped_time(
    time_env: WorkflowEnvironment,
    task_queue: str,
    activities: JourneyActivities,
    settings: Settings,
    add_contact: AddContact,
) -> None:
    # A window around the moment the send falls due, a month and six hours from now in skipped time.
    due = await time_env.get_current_time() + DELAY
    start, end = due - timedelta(hours=1), due + timedelta(hours=1)
    hours = QuietHours(start=f"{start:%H:%M}", end=f"{end:%H:%M}", policy="defer")
    request = send_request(await add_contact(timezone="UTC"), quiet_hours=hours)

    result = await send_later(time_env, task_queue, activities, request)

    assert (result.status, result.reason) == ("deferred", "quiet_hours")
    assert result.retry_at == end.astimezone(UTC).replace(second=0, microsecond=0)
