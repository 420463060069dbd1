"""Concurrent events for one contact: every one applied exactly once, none lost.

Runs on the session's database (PostgreSQL whenever it is reachable) and on a SQLite file:
each locks the contact its own way (`activities.caps.lock_contact`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from journeyman.scoring.store import ScoreStore, current_score
from persistence import Database, LeadScore, ScoreChange, create_database, migrate

from .conftest import HALF_LIFE, T0, event, plain_model

CONCURRENT = 24


@pytest.fixture(params=["session", "sqlite"])
async def any_database(
    request: pytest.FixtureRequest, database: Database, tmp_path: Path
) -> AsyncIterator[Database]:
    if request.param == "session":
        yield database
        return
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    migrate(url)
    sqlite = create_database(url)
    yield sqlite
    await sqlite.dispose()


async def test_concurrent_events_for_one_contact_all_count_once(
    any_database: Database, contact_id: str
) -> None:
    store = ScoreStore(any_database, plain_model())
    # Different times, so that a lost update or a wrong order of decay would show.
    times = [T0 + timedelta(hours=n) for n in range(CONCURRENT)]
    events = [
        event(contact_id, "plus_5", at, event_id=f"{contact_id}-{n}") for n, at in enumerate(times)
    ]
    # Every event twice (a retried delivery racing the first): still applied once.
    await asyncio.gather(*(store.apply_event(e, T0) for e in events + events))

    read = T0 + timedelta(days=3)
    expected = sum(5 * 0.5 ** ((read - at) / HALF_LIFE) for at in times)
    async with any_database.session() as session:
        score = await current_score(session, contact_id, read, HALF_LIFE)
        changes = (
            await session.exec(
                select(func.count()).where(col(ScoreChange.contact_id) == contact_id)
            )
        ).one()
        row = await session.get(LeadScore, contact_id)
    assert score == pytest.approx(expected, rel=1e-12)
    assert changes == CONCURRENT
    assert row is not None and row.qualified  # 24 x 5 = 120 crossed 50 once...
    async with any_database.session() as session:
        emitted = (
            await session.exec(
                select(ScoreChange.emitted).where(
                    col(ScoreChange.contact_id) == contact_id,
                    col(ScoreChange.emitted).is_not(None),
                )
            )
        ).all()
    assert emitted == ["lead.qualified"]  # ...and emitted once
