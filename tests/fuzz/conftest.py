"""The real app for Schemathesis: the migrated database and the Temporal dev server.

Schemathesis calls an ASGI app from an event loop of its own (a thread), so the app here is
built without the session's client and database: its lifespan opens both in that loop. The
dev server is the session's; the database is one of its own, so the contacts and events the
fuzzer makes up do not show in other tests' segment counts and stats.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from schemathesis.python import asgi
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from persistence import Contact, Database, create_database, migrate
from tests.api.helpers import API_KEY
from tests.conftest import POSTGRES_ADMIN_DSN, postgres_available

# The contact the path examples name (`c-1042`, see api/routers/contacts.py), so the main routes
# get valid calls too, not only 404s.
SEEDED_CONTACT = "c-1042"


class DeferredApp:
    """An ASGI app standing for one built later, by a fixture.

    The schema is loaded at import (Schemathesis parametrizes at collection), but the app
    needs the session's database and dev server; `schemathesis.pytest.from_fixture`, made for
    this, fails on pytest 9.2 (it sets `node._nodeid`, which pytest no longer has).
    """

    def __init__(self) -> None:
        self.target: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.target is None:
            raise RuntimeError("request the `fuzz_app` fixture in the test")
        await self.target(scope, receive, send)


FUZZED = DeferredApp()


@pytest.fixture(scope="session")
def fuzz_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not postgres_available():
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
        migrate(url)
        yield url
        return
    name = f"journeyman_fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}".replace(
        "postgresql://", "postgresql+psycopg://"
    )
    migrate(url)
    yield url
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def fuzz_database(fuzz_database_url: str) -> AsyncIterator[Database]:
    database = create_database(fuzz_database_url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def fuzz_settings(fuzz_database_url: str, dev_env: WorkflowEnvironment) -> Settings:
    return Settings(
        database_url=fuzz_database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"fuzz-{uuid.uuid4().hex[:8]}",
        api_keys=[API_KEY],
        # The provider webhook takes this secret as its bearer: the same value as the API key
        # lets the fuzzer's one Authorization header past it, into the body's validation.
        feedback_secret=API_KEY,
    )


@pytest.fixture
async def seeded(fuzz_database: Database) -> str:
    """Before each operation: the DELETE route's examples erase it."""
    async with fuzz_database.session() as session:
        if await session.get(Contact, SEEDED_CONTACT) is None:
            session.add(Contact(contact_id=SEEDED_CONTACT, email="ada@example.com"))
            await session.commit()
    return SEEDED_CONTACT


@pytest.fixture(scope="session")
def fuzz_app(fuzz_settings: Settings) -> Iterator[FastAPI]:
    """The real app behind `FUZZED`, with its lifespan run by Schemathesis on first call."""
    FUZZED.target = create_app(fuzz_settings)
    yield FUZZED.target
    # The lifespan runs in Schemathesis' loop: end it there (closes the pool and client).
    asgi.shutdown_lifespans()
    FUZZED.target = None
