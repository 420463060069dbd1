"""Engines and migrations.

`JOURNEYMAN_DATABASE_URL` is written in its sync form (`sqlite:///...` or
`postgresql+psycopg://...`); the async engine used by the API and activities is derived from it,
and Alembic uses the sync form.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# PostgreSQL pool: up to POOL_SIZE connections, all kept open once made. The worker runs up to
# 100 activities at once and a send holds its connection across the provider call, so a small
# pool with overflow opened and closed a connection per use under load (connecting was ~10%
# of the worker's CPU); the peak stays what it was (10 + 20 overflow).
POOL_SIZE = 30


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The API and the worker are separate processes on one file: WAL lets readers and one
    # writer overlap, and busy_timeout waits for the writer instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Segments decay lead scores in SQL (`points * power(0.5, ...)`); SQLite has `power` only
    # when built with its math functions, so it is provided here, the same on every build.
    dbapi_connection.create_function("power", 2, _power, deterministic=True)


def _power(base: float | None, exponent: float | None) -> float | None:
    if base is None or exponent is None:
        return None
    return math.pow(base, exponent)


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    # For a writer that writes one transaction at a time (a `GroupCommit`): one connection
    # of its own, kept open without a pre-ping, which costs a round trip per checkout, as
    # much CPU as a statement (measured: 1.2 against 0.9 ms per one-statement write). A
    # connection the database dropped fails that one transaction, which is retried, on a
    # fresh connection. The main engine where there is no pool to spare (SQLite).
    writer_engine: AsyncEngine | None = None
    # One instance per database of what is built on it and must be shared by every caller in
    # the process, by name (e.g. the event intake's group-commit writer).
    shared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def insert_once(self, row: SQLModel) -> bool:
        """Insert `row`; False when its key is already taken (the idempotency check)."""
        async with self.sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def writer_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the writer's connection (see `writer_engine`)."""
        async with (self.writer_engine or self.engine).begin() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.writer_engine is not None:
            await self.writer_engine.dispose()


def create_database(url: str) -> Database:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url(url))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return Database(engine=engine, sessions=_sessions(engine))
    # pre-ping: a connection a database restart or a cut link killed while pooled is
    # replaced on checkout instead of failing a call.
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_pre_ping=True)
    # Writers queue their jobs rather than their transactions (`GroupCommit`): one
    # transaction at a time per writer, two writers per process at most (the intake's, the
    # lifecycle records').
    writers = create_async_engine(url, pool_size=2, max_overflow=0)
    return Database(engine=engine, sessions=_sessions(engine), writer_engine=writers)


def _sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database to the newest schema (idempotent; safe at every start-up)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
