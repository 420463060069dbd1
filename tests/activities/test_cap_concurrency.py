"""Frequency caps hold under concurrency: journeys sending to one contact at the same instant
cannot both take the last slot.

Runs on the session's database (PostgreSQL whenever it is reachable, as in CI) and on a SQLite
file, since each needs its own way of locking (see `activities.caps`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities import JourneyActivities, TemplateRenderer
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, create_database, migrate

from .conftest import RecordingStarter
from .sends import Clock, message_row, send_request

CONCURRENT = 8
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class ArriveTogether(JourneyActivities):
    """Holds every send at its claim until all of them got there, so that all claims race.

    Without it, rendering (synchronous) spaces the sends out and they would rarely overlap.
    """

    def __init__(self, parties: int, **dependencies: Any) -> None:
        super().__init__(**dependencies)
        self.barrier = asyncio.Barrier(parties)

    async def _claim(self, *args: Any, **kwargs: Any) -> Any:
        await self.barrier.wait()
        return await super()._claim(*args, **kwargs)


@pytest.fixture(params=["session", "sqlite"])
async def any_database(
    request: pytest.FixtureRequest, database: Database, tmp_path: Path
) -> AsyncIterator[Database]:
    if request.param == "session":
        yield database
        return
    url = f"sqlite:///{tmp_path / 'caps.db'}"
    migrate(url)
    sqlite = create_database(url)
    yield sqlite
    await sqlite.dispose()


async def test_concurrent_sends_pass_a_cap_of_one_exactly_once(
    any_database: Database, settings: Settings, sink: SmtpSink
) -> None:
    database = any_database
    contact_id = f"c-{uuid.uuid4().hex[:10]}"
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        await session.commit()
    capped = settings.model_copy(update={"frequency_caps": "email:1/24h"})
    acts = ArriveTogether(
        CONCURRENT,
        database=database,
        settings=capped,
        renderer=TemplateRenderer.from_settings(capped),
        starter=RecordingStarter(),
        clock=Clock(NOW),
    )
    requests = [send_request(contact_id, journey=f"journey_{n}") for n in range(CONCURRENT)]
    run = ActivityEnvironment().run

    results = await asyncio.gather(*(run(acts.send_message, request) for request in requests))

    outcomes = sorted(result.outcome for result in results)
    assert outcomes == ["sent"] + ["suppressed: frequency_cap"] * (CONCURRENT - 1)
    assert len(sink.messages) == 1
    rows = [await message_row(database, request.message_id) for request in requests]
    assert sorted(row.status for row in rows) == ["sent"] + ["suppressed"] * (CONCURRENT - 1)
