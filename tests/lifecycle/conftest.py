"""The lifecycle tests run on both databases a deployment may use: the session's PostgreSQL (when
reachable, see tests/conftest.py) and a migrated SQLite file of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from persistence import Database, create_database, migrate


@pytest.fixture(scope="session")
async def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path_factory.mktemp('lifecycle') / 'journeyman.db'}"
    migrate(url)
    db = create_database(url)
    yield db
    await db.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_database(
    request: pytest.FixtureRequest, database: Database, sqlite_database: Database
) -> Database:
    if request.param == "sqlite":
        return sqlite_database
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL is not reachable (the session fell back to SQLite)")
    return database
