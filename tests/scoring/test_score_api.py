"""End to end on the Temporal dev server: events posted to the API reach the contact's scorer
(started by routing), thresholds emit routed events, and `GET /v1/contacts/{id}/score`
shows the score and its history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, TemplateRenderer
from activities.lifecycle import LifecycleRecorder
from activities.scoring import scoring_parts
from journeyman.enrollments import EnrollmentService
from journeyman.scoring.contracts import ScorerResult, scorer_workflow_id
from journeyman.scoring.store import MQL
from journeyman.settings import Settings
from persistence import Contact, Database, EventRecord
from persistence.models import utcnow
from tests.api.helpers import API_KEY
from tests.support import running_app
from workflows import catalog
from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue, api_keys=[API_KEY])


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app, and one worker with every journey (sends captured) and the scorer."""
    client = dev_env.client
    service = EnrollmentService(client=client, database=database, settings=settings)

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(request: SendRequest) -> SendResult:
        return SendResult(message_id=request.message_id, status="sent")

    journeys = JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        starter=service.start,
    )
    scoring = scoring_parts(database=database, settings=settings, router=service)
    async with (
        Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[*catalog.all_versions(), *scoring.workflows],
            activities=[
                send_message,
                journeys.read_contact,
                *LifecycleRecorder(database).activities(),
                journeys.start_journey,
                *scoring.activities,
            ],
        ),
        running_app(settings, client, database) as app,
    ):
        yield _client(app)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


async def test_posted_events_are_scored_and_the_score_is_readable(
    api: httpx.AsyncClient,
    dev_env: WorkflowEnvironment,
    database: Database,
    contact_id: str,
) -> None:
    at = utcnow() - timedelta(minutes=5)
    posted = [
        ("page_viewed", {"path": "/pricing"}),
        ("page_viewed", {"path": "/blog"}),  # no rule: not scored
        ("demo_attended", {}),
        ("webinar_attended", {}),  # 55: qualified
    ]
    for n, (name, properties) in enumerate(posted):
        body = {
            "id": f"{contact_id}-{n}",
            "contact_id": contact_id,
            "name": name,
            "properties": properties,
            "occurred_at": (at + timedelta(seconds=n)).isoformat(),
        }
        assert (await api.post("/v1/events", json=body)).status_code == 202
    # Leaving the email list records an `unsubscribed` event (-30): 25, disqualified.
    unsubscribe = await api.put(f"/v1/contacts/{contact_id}/subscriptions", json={"email": False})
    assert unsubscribe.status_code == 200
    # Not qualified at the end, so the scorer's run completes once it applied everything.
    result = await dev_env.client.get_workflow_handle(
        scorer_workflow_id(contact_id), result_type=ScorerResult
    ).result()
    assert result.qualified is False

    response = await api.get(f"/v1/contacts/{contact_id}/score", params={"limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["qualified"] is False
    assert body["score"] == pytest.approx(25, abs=0.01)  # minutes of decay only
    assert (body["qualify_at"], body["disqualify_below"], body["half_life_days"]) == (50, 30, 30)
    assert [h["event_name"] for h in body["history"]] == [
        "unsubscribed",
        "webinar_attended",
        "demo_attended",
    ]
    newest = body["history"][0]
    assert newest["delta"] == -30
    assert newest["rules"] == {"unsubscribe": -30}
    assert newest["emitted"] == "lead.disqualified"
    assert body["history"][1]["emitted"] == "lead.qualified"
    assert body["history"][1]["score"] == pytest.approx(55, abs=0.01)

    full = (await api.get(f"/v1/contacts/{contact_id}/score")).json()
    assert len(full["history"]) == 4

    async with database.session() as session:
        contact = await session.get(Contact, contact_id)
        emitted = [
            await session.get(EventRecord, h["event_id"]) for h in full["history"] if h["emitted"]
        ]
    assert contact is not None and contact.lifecycle_stage == MQL
    assert len(emitted) == 2  # the causes are stored events too


async def test_the_emitted_events_are_stored_and_routed(
    api: httpx.AsyncClient, dev_env: WorkflowEnvironment, database: Database, contact_id: str
) -> None:
    for n, name in enumerate(["demo_attended", "demo_attended", "webinar_attended"]):
        body = {"id": f"{contact_id}-{n}", "contact_id": contact_id, "name": name}
        assert (await api.post("/v1/events", json=body)).status_code == 202
    unsubscribe = await api.put(f"/v1/contacts/{contact_id}/subscriptions", json={"email": False})
    assert unsubscribe.status_code == 200
    await dev_env.client.get_workflow_handle(scorer_workflow_id(contact_id)).result()
    async with database.session() as session:
        rows = (
            await session.exec(
                select(EventRecord)
                .where(
                    col(EventRecord.contact_id) == contact_id,
                    col(EventRecord.name).in_(["lead.qualified", "lead.disqualified"]),
                )
                .order_by(col(EventRecord.occurred_at))
            )
        ).all()
    assert [r.name for r in rows] == ["lead.qualified", "lead.disqualified"]
    assert all(r.routing is not None and r.routed_at is not None for r in rows)
    assert rows[0].properties["score"] == pytest.approx(55, abs=0.01)


async def test_an_unknown_contact_is_404_and_bad_limits_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/contacts/nobody-at-all/score")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown contact 'nobody-at-all'"}
    for limit in ("0", "501", "many"):
        response = await api.get("/v1/contacts/nobody-at-all/score", params={"limit": limit})
        assert response.status_code == 422, limit


async def test_a_contact_never_scored_has_zero_and_no_history(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    assert (await api.put(f"/v1/contacts/{contact_id}", json={})).status_code == 201
    body = (await api.get(f"/v1/contacts/{contact_id}/score")).json()
    assert (body["score"], body["qualified"], body["history"]) == (0, False, [])
