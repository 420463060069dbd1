"""Fixtures of the security tests: the real app on the real database and Temporal dev server,
configured with an admin key and an ingest key, and clients holding each (or none)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from persistence import Database
from tests.support import running_app

ADMIN_KEY = "sec-admin-key-6f1d2e"
OTHER_ADMIN_KEY = "sec-admin-key-second-93ab"
INGEST_KEY = "sec-ingest-key-b7c4a1"


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[ADMIN_KEY, OTHER_ADMIN_KEY],
        ingest_api_keys=[INGEST_KEY],
    )


@pytest.fixture
async def app(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async with running_app(settings, dev_env.client, database) as app:
        yield app


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials; each request sets its own headers."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    ) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
