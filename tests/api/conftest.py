"""The API against real parts: the migrated database, the Temporal dev server, and a worker
running the real journeys on a fresh task queue.

Only `send_message` is replaced (by a capture registered under its contract name); contacts
are read and the enrollment lifecycle is recorded by the real `JourneyActivities`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage

import httpx
import pytest
from fastapi import FastAPI
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, TemplateRenderer
from api import create_app
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import Database
from tests.api.helpers import API_KEY, SentMessages
from workflows import catalog
from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult


class _UnusedMailer:
    async def send(self, message: EmailMessage) -> None:
        raise AssertionError("sends are captured before any mailer is reached")


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue, api_keys=[API_KEY, "other"])


@pytest.fixture
async def sent(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    """Run a worker for this test's task queue; yields the captured sends."""
    captured = SentMessages()

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(request: SendRequest) -> SendResult:
        captured.append(request)
        return SendResult(message_id=request.message_id, status="sent")

    real = JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=_UnusedMailer(),
        starter=EnrollmentService(
            client=dev_env.client, database=database, settings=settings
        ).start,
    )
    async with Worker(
        dev_env.client,
        task_queue=settings.task_queue,
        workflows=catalog.all_versions(),
        activities=[send_message, real.read_contact, real.record_lifecycle, real.start_journey],
    ):
        yield captured


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, client=dev_env.client, database=database)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(app: FastAPI, sent: SentMessages) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated HTTP client on the app, with a worker running the journeys."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
def contact_id() -> str:
    """A contact of this test alone: the database and the server are shared by the session."""
    return f"c-{uuid.uuid4().hex[:12]}"
