"""`GET /metrics` for Prometheus, with the API key as a bearer token.

Prometheus sends it with `authorization: {credentials: <key>}` in its scrape config.
"""

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder

from api.deps import DatabaseDep, require_api_key
from api.schemas.common import ErrorOut
from journeyman.metrics import read_totals, scrape_registry

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[Depends(require_api_key)],
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        401: {"model": ErrorOut, "description": "Missing or wrong API key."},
        503: {"model": ErrorOut, "description": "Database unreachable."},
    },
)
async def metrics(request: Request, database: DatabaseDep) -> Response:
    """Events counted by this process; enrollments and messages counted in the database now.

    The worker's own metrics (Temporal SDK, send latency) are on the worker, at
    `JOURNEYMAN_WORKER_METRICS_ADDRESS`.
    """
    registry = scrape_registry(await read_totals(database))
    # The format Prometheus asked for: OpenMetrics if its Accept header says so, else text.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=content_type)
