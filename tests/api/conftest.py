"""The API against real parts: the migrated database, the Temporal dev server, and a worker
running the real journeys on a fresh task queue.

Only `send_message` is replaced (by a capture registered under its contract name); contacts
are read and the enrollment lifecycle is recorded by the real `JourneyActivities`.
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


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue, api_keys=[API_KEY, "other"])


@pytest.fixture
async def sent(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    """Run a worker for this test's task queue; yields the captured sends."""
    async with capturing_worker(dev_env.client, database, settings) as captured:
        yield captured


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, dev_env.client, database) as app:
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
