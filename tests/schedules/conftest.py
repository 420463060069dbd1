"""A Temporal dev server of their own for the schedule tests.

The time-skipping test server does not implement schedules (CreateSchedule is
"unimplemented"), so these run on the real dev server. Not the shared `dev_env`: syncing
deletes every `journey:` schedule not declared, which must not reach other tests' schedules.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from tests.conftest import binary


@pytest.fixture(scope="package")
async def schedule_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"))
    yield env
    await env.shutdown()


@pytest.fixture
def client(schedule_env: WorkflowEnvironment) -> Client:
    return schedule_env.client


@pytest.fixture
def settings() -> Settings:
    return Settings(task_queue=f"schedules-{uuid.uuid4().hex[:8]}", bulk_starts_per_second=25)
