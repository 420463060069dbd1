"""Stats tests: the known dataset of `seed.py` in the session's database, and the app over it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api import create_app
from journeyman.settings import Settings
from persistence import Database
from tests.stats import seed

API_KEY = "stats-key"


@pytest.fixture(scope="session")
async def seeded(database: Database) -> Database:
    seeder = seed.Seeder()
    seed.funnel(seeder)
    seed.split(seeder)
    await seeder.save(database)
    return database


@pytest.fixture(scope="session")
def stats_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, api_keys=[API_KEY])


@pytest.fixture(scope="session")
async def stats_app(seeded: Database, stats_settings: Settings) -> AsyncIterator[FastAPI]:
    # No Temporal here: the stats read only the database (the lazy client never connects).
    app = create_app(stats_settings, database=seeded)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def stats_api(stats_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stats_app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client
