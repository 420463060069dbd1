"""The API with its real database and the Temporal dev server; no worker is needed to route."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from persistence import Database
from tests.metrics.helpers import API_KEY
from tests.support import running_app


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue, api_keys=[API_KEY])


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, dev_env.client, database) as app:
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app that sends no key unless a request adds one."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    ) as client:
        yield client
