"""When Temporal or the database cannot be reached: 503 with Retry-After, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from persistence import Database, EventRecord
from tests.api.helpers import API_KEY, event

# Nothing listens on port 1: connections are refused at once.
NOWHERE = "127.0.0.1:1"


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


async def test_temporal_unreachable_is_503_and_the_event_is_kept_for_the_retry(
    settings: Settings, database: Database, contact_id: str
) -> None:
    app = create_app(settings.model_copy(update={"temporal_address": NOWHERE}), database=database)
    body = event(contact_id, "signed_up")
    async with serve(app) as api:
        response = await api.post("/v1/events", json=body)
        health = await api.get("/healthz")
        catalog = await api.get("/v1/journeys")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "Temporal is unreachable" in response.json()["detail"]
    assert (health.status_code, health.json()) == (
        503,
        {"status": "degraded", "database": "ok", "temporal": "unreachable"},
    )
    assert catalog.status_code == 200  # static: still served
    async with database.session() as session:
        stored = await session.get(EventRecord, body["id"])
    assert stored is not None and stored.routing is None  # a retry will route it


async def test_database_unreachable_is_503(
    settings: Settings, dev_env: WorkflowEnvironment, contact_id: str
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@{NOWHERE}/nothing"}
    )
    app = create_app(unreachable, client=dev_env.client)
    async with serve(app) as api:
        contact = await api.get(f"/v1/contacts/{contact_id}")
        posted = await api.post("/v1/events", json=event(contact_id, "signed_up"))
        health = await api.get("/healthz")

    for response in (contact, posted):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "database is unreachable" in response.json()["detail"]
    assert (health.status_code, health.json()) == (
        503,
        {"status": "degraded", "database": "unreachable", "temporal": "ok"},
    )
