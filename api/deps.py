"""FastAPI dependencies, as `Annotated` aliases so route signatures read like prose.

Everything comes from `app.state`, filled once by the lifespan in `api.main`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.pages import Pages
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.unsubscribe import ConsentService
from persistence import Database


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def _enrollments(request: Request) -> EnrollmentService:
    service: EnrollmentService = request.app.state.enrollments
    return service


async def _consent(request: Request) -> ConsentService:
    service: ConsentService = request.app.state.consent
    return service


async def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
ClientDep = Annotated[Client, Depends(_client)]
EnrollmentsDep = Annotated[EnrollmentService, Depends(_enrollments)]
ConsentDep = Annotated[ConsentService, Depends(_consent)]
PagesDep = Annotated[Pages, Depends(_pages)]


async def _session(database: DatabaseDep) -> AsyncIterator[AsyncSession]:
    async with database.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


class Scope(StrEnum):
    """What a key may do. Admin keys (JOURNEYMAN_API_KEYS) may do everything; ingest keys
    (JOURNEYMAN_INGEST_API_KEYS), for backends, only what `INGEST_ENDPOINTS` lists."""

    ADMIN = "admin"
    INGEST = "ingest"


# The only endpoints an ingest key reaches, named by module and function, so the list lives
# here and not scattered over routers: everything else, including any route added later, is
# admin-only (default deny). Writes only: a leaked backend key can feed events and contacts
# in, but can read no one's data out. tests/security/test_auth.py pins these to their paths.
INGEST_ENDPOINTS = frozenset(
    {
        "api.routers.events:post_event",
        "api.routers.events:post_events",
        "api.routers.contacts:put_contact",
        "api.routers.contacts:put_subscriptions",
        "api.routers.contacts:exit_journey",
        "api.routers.journeys:enroll",
    }
)


def key_scope(settings: Settings, given: bytes) -> Scope | None:
    """The scope of the key `given`, or None if it is no configured key.

    Every configured key, admin and ingest, is compared, each in constant time, and none is
    skipped once one matched: timing tells nothing about the keys or which list holds one.
    """
    admin = ingest = False
    for key in settings.api_keys:
        admin |= hmac.compare_digest(given, key.encode())
    for key in settings.ingest_api_keys:
        ingest |= hmac.compare_digest(given, key.encode())
    if not given:
        return None
    if admin:
        return Scope.ADMIN
    return Scope.INGEST if ingest else None


def is_api_key(settings: Settings, given: bytes) -> bool:
    """Whether `given` is an admin key (ingest keys are not): see `key_scope`."""
    return key_scope(settings, given) is Scope.ADMIN


def endpoint_name(request: Request) -> str:
    """`module:function` of the endpoint the request was routed to ("" before routing)."""
    endpoint = request.scope.get("endpoint")
    if endpoint is None:
        return ""
    return f"{endpoint.__module__}:{endpoint.__qualname__}"


def ingest_refused(request: Request) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail=f"this API key is an ingest key: {request.method} {request.url.path} needs an "
        "admin key (JOURNEYMAN_API_KEYS)",
    )


# auto_error=False: a missing or non-Bearer header gets our 401 with WWW-Authenticate rather
# than the default answer; declaring the scheme still gives /docs its "Authorize" button.
_bearer = HTTPBearer(
    auto_error=False,
    description="An admin key from JOURNEYMAN_API_KEYS, or an ingest key from "
    "JOURNEYMAN_INGEST_API_KEYS (events, contact and consent writes, enrolling and exiting).",
)


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    given = credentials.credentials.encode() if credentials else b""
    scope = key_scope(settings, given)
    if scope is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scope is Scope.INGEST and endpoint_name(request) not in INGEST_ENDPOINTS:
        raise ingest_refused(request)
    return credentials.credentials if credentials else ""


ApiKeyDep = Annotated[str, Depends(require_api_key)]
