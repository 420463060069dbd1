"""Provider feedback against real parts: the migrated database, the Temporal dev server (for
routing the `unsubscribed` events), the app over ASGI, and a worker running the real journeys.

The clients here carry no API key: the webhook authenticates with the provider's scheme.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from persistence import Database
from tests.api.helpers import API_KEY, SentMessages
from tests.support import capturing_worker, running_app

from .helpers import FEEDBACK_SECRET, MAILGUN_KEY

BASE_URL = "http://journeyman.test"


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[API_KEY],
        feedback_secret=FEEDBACK_SECRET,
        mailgun_signing_key=MAILGUN_KEY,
    )


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, dev_env.client, database) as app:
        yield app


@pytest.fixture
async def hook(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A provider: no API key; each test adds its own authentication."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


@pytest.fixture
async def worker(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    """A worker for this test's task queue running every journey; sends are captured."""
    async with capturing_worker(dev_env.client, database, settings) as captured:
        yield captured


@pytest.fixture
async def api(app: FastAPI, worker: SentMessages) -> AsyncIterator[httpx.AsyncClient]:
    """The backend: the API key, with a worker running the journeys."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=BASE_URL,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


@pytest.fixture
def contact_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"
