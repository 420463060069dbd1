"""The FastAPI app: built here, with the routers included and clients made in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from temporalio.client import Client

from api.deps import require_api_key
from api.errors import install_error_handlers
from api.limits import install_body_limits
from api.pages import Pages
from api.routers import (
    bulk,
    contacts,
    crm_webhooks,
    events,
    health,
    journeys,
    metrics,
    reports,
    scores,
    segments,
    simulate,
    stats,
    tracking,
    unsubscribe,
    webhooks,
)
from api.schemas.common import ErrorOut
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings, get_settings
from journeyman.temporal import connect_options
from journeyman.tracing import configure_tracing, instrument_app
from journeyman.unsubscribe import ConsentService
from persistence import Database, create_database


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    database: Database | None = None,
) -> FastAPI:
    """Build the app. `client` and `database`, when given (tests), are used and not closed."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as owned:
            db = database
            if db is None:
                db = create_database(settings.database_url_resolved)
                owned.push_async_callback(db.dispose)
            # Lazy: the API starts (and /healthz says why it is degraded) while Temporal is
            # still coming up; calls made before it is reachable answer 503.
            # With tracing on, the plugin carries each request's trace into the workflows it
            # starts or signals.
            temporal = client or await Client.connect(
                settings.temporal_address, lazy=True, **connect_options(settings)
            )
            app.state.database = db
            app.state.client = temporal
            enrollments = EnrollmentService(client=temporal, database=db, settings=settings)
            app.state.enrollments = enrollments
            app.state.consent = ConsentService(
                database=db, enrollments=enrollments, settings=settings
            )
            yield

    app = FastAPI(
        title="Journeyman",
        summary="Durable customer journeys on Temporal.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Tracing (off by default): the provider first, so request spans have somewhere to go.
    configure_tracing(settings, "api")
    instrument_app(app, settings)
    app.state.pages = Pages(settings)
    install_error_handlers(app)
    install_body_limits(app, settings)
    app.include_router(health.router)
    # Public: the signed token in the link is the authorisation.
    app.include_router(unsubscribe.router)
    # Outside /v1: tracking links and pixels are opened by mail clients (public by design);
    # the report (a browser: HTTP Basic with the API key) and metrics (a scraper: bearer)
    # check the key on their own routes.
    # Provider webhooks (/v1/webhooks) check the provider's signature or secret instead.
    for public in (
        tracking.router,
        reports.router,
        metrics.router,
        webhooks.router,
        crm_webhooks.router,
    ):
        app.include_router(public)
    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Depends(require_api_key)],
        responses={
            401: {"model": ErrorOut, "description": "Missing or wrong API key."},
            # Ingest keys (JOURNEYMAN_INGEST_API_KEYS) reach only api.deps.INGEST_ENDPOINTS.
            403: {"model": ErrorOut, "description": "An ingest key on an admin-only route."},
            413: {"model": ErrorOut, "description": "Body over JOURNEYMAN_MAX_REQUEST_BYTES."},
            503: {"model": ErrorOut, "description": "Database or Temporal unreachable."},
        },
    )
    for router in (
        contacts.router,
        scores.router,
        events.router,
        journeys.router,
        bulk.router,
        simulate.router,
        segments.router,
        stats.router,
    ):
        v1.include_router(router)
    app.include_router(v1)
    return app
