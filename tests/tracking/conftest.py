"""The tracking routes against real parts: the migrated database, the API app, the Temporal dev
server, and a worker running a test journey with the real send activity over a real SMTP sink.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, TemplateRenderer
from activities.lifecycle import LifecycleRecorder
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, Message
from tests.support import running_app
from workflows import catalog
from workflows.runtime import Journey

from .journeys import ClickToContinue

API_KEY = "test-key"
TEMPLATES = {
    "ask.subject.txt": "One question",
    "ask.txt": "Pick one: https://shop.example/red or https://shop.example/blue",
    "ask.html": (
        '<html><body><p>Pick one: <a href="https://shop.example/red">red</a> or '
        '<a href="https://shop.example/blue?size=m&amp;fit=slim">blue</a>.</p></body></html>'
    ),
    "thanks.subject.txt": "Thanks",
    "thanks.txt": "You picked {{ clicked }}",
    "thanks.html": "<html><body><p>You picked {{ clicked }}</p></body></html>",
}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def settings(database_url: str, task_queue: str, tmp_path: Path, sink: SmtpSink) -> Settings:
    for name, text in TEMPLATES.items():
        (tmp_path / name).write_text(text)
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[API_KEY],
        secret_key="tracking-test-secret",
        public_url="https://mail.shop.example",
        templates_dir=tmp_path,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        quiet_hours="",
    )


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, dev_env.client, database) as app:
        yield app


@pytest.fixture
async def web(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the API key, like a mail client or a browser."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mail.shop.example"
    ) as client:
        yield client


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://mail.shop.example",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
def with_test_journey(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add the test journey to the catalog routing reads (the real one lists workflows/)."""
    published = catalog._load()
    monkeypatch.setattr(
        catalog, "_load", lambda: {**published, ClickToContinue.name: {1: ClickToContinue}}
    )


@pytest.fixture
async def worker(
    dev_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    with_test_journey: None,
) -> AsyncIterator[None]:
    """A worker on this test's queue with the real activities (mail goes to the sink)."""
    real = JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        starter=EnrollmentService(
            client=dev_env.client, database=database, settings=settings
        ).start,
    )
    workflows: list[type[Journey]] = [ClickToContinue]
    async with Worker(
        dev_env.client,
        task_queue=settings.task_queue,
        workflows=workflows,
        activities=[
            real.send_message,
            real.read_contact,
            *LifecycleRecorder(database).activities(),
            real.start_journey,
        ],
    ):
        yield


async def add_message(database: Database, links: list[str]) -> Message:
    """A sent email of a fresh contact, as the send activity leaves its row."""
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    workflow_id = f"journey:welcome_series:{contact_id}"
    row = Message(
        message_id=f"{workflow_id}:{uuid.uuid4()}:welcome",
        workflow_id=workflow_id,
        run_id=str(uuid.uuid4()),
        journey="welcome_series",
        step="welcome",
        contact_id=contact_id,
        channel="email",
        template="welcome_series/welcome",
        status="sent",
        to_address="ada@example.com",
        links=links,
    )
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        session.add(row)
        await session.commit()
    return row
