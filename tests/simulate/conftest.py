"""Simulations run in the session's time-skipping server (`time_env`) unless a test checks
the path that starts its own, as the CLI and the API do."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings


@pytest.fixture
def settings() -> Settings:
    # The defaults that matter here: quiet hours 21:00-08:00 (defer) and the email caps.
    return Settings()


async def next_local(env: WorkflowEnvironment, at: time, zone: str = "UTC") -> datetime:
    """The first `at` in `zone` on a day after the server's clock (shared by the session, so
    earlier tests have moved it on): a start whose time of day is known."""
    now = await env.get_current_time()
    day = now.astimezone(ZoneInfo(zone)).date() + timedelta(days=1)
    return datetime.combine(day, at, tzinfo=ZoneInfo(zone)).astimezone(UTC)
