"""The PostgreSQL pool: connections kept once made, and a dead one replaced on checkout.

A connection left in the pool may have been killed by a restart or a cut link; it must be
replaced on checkout rather than fail the call (tests/chaos/test_database_outage.py has the
whole outage).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import text

import persistence.db
from persistence import Database, create_database


@pytest.fixture
async def pooled(database_url: str) -> AsyncIterator[Database]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the pool settings are PostgreSQL's")
    database = create_database(database_url)
    yield database
    await database.dispose()


async def backend_pid(database: Database) -> int:
    async with database.session() as session:
        pid: int = (await session.exec(text("SELECT pg_backend_pid()"))).scalar()  # type: ignore[call-overload]
    return pid


def terminate(database_url: str, pid: int) -> None:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


async def test_a_burst_keeps_its_connections(pooled: Database) -> None:
    """Thirty sessions at once leave thirty pooled connections, none closed on return."""

    async def hold() -> None:
        async with pooled.session() as session:
            await session.exec(text("SELECT pg_sleep(0.2)"))  # type: ignore[call-overload]

    await asyncio.gather(*(hold() for _ in range(persistence.db.POOL_SIZE)))

    assert pooled.engine.pool.checkedin() == persistence.db.POOL_SIZE  # type: ignore[attr-defined]


async def test_a_connection_killed_while_pooled_is_replaced_on_checkout(
    pooled: Database, database_url: str
) -> None:
    pid = await backend_pid(pooled)
    terminate(database_url, pid)

    assert await backend_pid(pooled) != pid


async def writer_pid(database: Database) -> int:
    async with database.writer_transaction() as connection:
        pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def test_the_writers_connection_is_kept_and_replaced_after_it_dies(
    pooled: Database, database_url: str
) -> None:
    """The group-commit writers' connection is kept across transactions (no pre-ping); one
    the database killed fails a single transaction, and the next gets a fresh connection."""
    first = await writer_pid(pooled)
    assert await writer_pid(pooled) == first
    assert first not in {await backend_pid(pooled)}  # not one of the main pool's

    terminate(database_url, first)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        await writer_pid(pooled)

    assert await writer_pid(pooled) != first
