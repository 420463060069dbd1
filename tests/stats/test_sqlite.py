"""The same queries on SQLite (the dev default) as on the session's PostgreSQL: same numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeyman.stats import StatsFilter, journey_stats
from persistence import Database, create_database, migrate
from tests.stats import seed


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    migrate(url)
    database = create_database(url)
    seeder = seed.Seeder()
    seed.funnel(seeder)
    seed.split(seeder)
    await seeder.save(database)
    yield database
    await database.dispose()


async def test_sqlite_and_the_session_database_agree(sqlite: Database, seeded: Database) -> None:
    for window in (
        StatsFilter(
            journey=seed.JOURNEY,
            since=datetime(2001, 3, 1, tzinfo=UTC),
            until=datetime(2001, 4, 1, tzinfo=UTC),
        ),
        StatsFilter(
            journey=seed.JOURNEY,
            since=datetime(2001, 3, 1, 5, tzinfo=UTC),
            until=datetime(2001, 4, 1, tzinfo=UTC),
            version=2,
        ),
        StatsFilter(
            journey=seed.JOURNEY,
            since=datetime(2002, 1, 1, tzinfo=UTC),
            until=datetime(2003, 1, 1, tzinfo=UTC),
        ),
    ):
        answers = []
        for database in (sqlite, seeded):
            async with database.session() as session:
                stats = await journey_stats(session, window)
            for step in stats.steps:
                step.first_at = None  # a string on SQLite, a datetime on PostgreSQL
            answers.append(stats)
        on_sqlite, on_session = answers
        assert on_sqlite.entered > 0
        assert on_sqlite == on_session, window
