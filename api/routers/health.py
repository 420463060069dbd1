"""Health: open to load balancers and orchestrators, so no API key."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from temporalio.client import Client

from api.deps import ClientDep, DatabaseDep
from api.schemas.health import HealthOut, Reachability
from persistence import Database

router = APIRouter(tags=["health"])

PROBE_TIMEOUT_SECONDS = 2.0


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "A dependency is unreachable."}},
)
async def healthz(database: DatabaseDep, client: ClientDep, response: Response) -> HealthOut:
    """Whether the database and Temporal answer; 503 when either does not."""
    database_state, temporal_state = await asyncio.gather(
        _probe_database(database), _probe_temporal(client)
    )
    healthy = database_state == temporal_state == "ok"
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthOut(
        status="ok" if healthy else "degraded", database=database_state, temporal=temporal_state
    )


async def _probe_database(database: Database) -> Reachability:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS), database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not usable", which is the answer
        return "unreachable"
    return "ok"


async def _probe_temporal(client: Client) -> Reachability:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            healthy = await client.service_client.check_health()
    except Exception:  # any failure means "not usable", which is the answer
        return "unreachable"
    return "ok" if healthy else "unreachable"
