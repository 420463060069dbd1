"""A qualified lead reaches sales while HubSpot is down: the lead_nurturing journey notifies
sales (internal email now, CRM task queued) and goes on inviting the contact to a demo; when
HubSpot is back, the sync creates the task for the contact's owner."""

from __future__ import annotations

import httpx
from sqlmodel import select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, TemplateRenderer
from activities.crm_sync import CrmSyncActivities, crm_parts
from activities.lifecycle import LifecycleRecorder
from activities.timing import TimingActivities
from journeyman.crm.contracts import PushRequest
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import CrmTask, Database
from persistence.models import utcnow
from tests.api.helpers import API_KEY, SentMessages, event
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import WINDOW
from tests.crm_sync.helpers import Outbox, crm_id_of, qualified_lead
from tests.support import running_app
from workflows import catalog
from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult


async def test_a_qualified_lead_reaches_sales_while_hubspot_is_down(
    dev_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    sync: CrmSyncActivities,
    hubspot: FakeHubSpot,
    contact_id: str,
) -> None:
    # The journey's own sales alert template.
    real = settings.model_copy(
        update={"templates_dir": Settings().templates_dir, "api_keys": [API_KEY]}
    )
    renderer = TemplateRenderer.from_settings(real)
    client = dev_env.client
    await qualified_lead(database, contact_id)
    hubspot.outage = True
    sent = SentMessages()
    mailer = Outbox()

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(request: SendRequest) -> SendResult:
        sent.append(request)
        return SendResult(message_id=request.message_id, status="sent")

    journeys = JourneyActivities(
        database=database,
        settings=real,
        renderer=renderer,
        mailer=mailer,
        starter=EnrollmentService(client=client, database=database, settings=real).start,
    )
    timing = TimingActivities(database=database, settings=real)
    # Only notify_sales from the CRM parts: the sync is driven by hand below.
    parts = crm_parts(
        database=database, settings=real, renderer=renderer, mailer=mailer, connector=None
    )
    async with (
        Worker(
            client,
            task_queue=real.task_queue,
            workflows=catalog.all_versions(),
            activities=[
                send_message,
                journeys.read_contact,
                *LifecycleRecorder(database).activities(),
                journeys.start_journey,
                timing.next_local_time,
                *parts.activities,
            ],
        ),
        running_app(real, client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api,
    ):
        download = event(contact_id, "whitepaper_downloaded", title="Scaling B2B")
        assert (await api.post("/v1/events", json=download)).status_code == 202
        [whitepaper, invite] = await sent.settled(contact_id, 2)
    assert (whitepaper.step, invite.step) == ("whitepaper", "demo_invite")
    [alert] = mailer.sent
    assert alert["To"] == "sales@example.com"
    assert "Qualified lead" in str(alert["Subject"])
    assert hubspot.requests == []
    async with database.session() as session:
        [task] = (await session.exec(select(CrmTask).where(CrmTask.contact_id == contact_id))).all()
    assert task.status == "pending" and "Scaling B2B" in task.body

    hubspot.outage = False
    result = await sync.push_due(PushRequest(now=utcnow() + WINDOW))
    assert (result.pushed, result.tasks_created) == (1, 1)
    [created] = hubspot.tasks.values()
    assert created.contact_ids == [await crm_id_of(database, contact_id)]
    assert created.properties["hubspot_owner_id"] == "77"
    assert "Scaling B2B" in created.properties["hs_task_body"]
