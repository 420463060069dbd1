"""FastAPI dependencies, as `Annotated` aliases so route signatures read like prose.

Everything comes from `app.state`, filled once by the lifespan in `api.main`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
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


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def _enrollments(request: Request) -> EnrollmentService:
    service: EnrollmentService = request.app.state.enrollments
    return service


def _consent(request: Request) -> ConsentService:
    service: ConsentService = request.app.state.consent
    return service


def _pages(request: Request) -> Pages:
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


def is_api_key(settings: Settings, given: bytes) -> bool:
    """Whether `given` is one of the configured keys. Every key is compared, in constant time
    each, so timing tells nothing about the keys."""
    matched = False
    for key in settings.api_keys:
        matched |= hmac.compare_digest(given, key.encode())
    return bool(given) and matched


# auto_error=False: a missing or non-Bearer header gets our 401 with WWW-Authenticate rather
# than the default answer; declaring the scheme still gives /docs its "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="An API key from JOURNEYMAN_API_KEYS.")


def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    given = credentials.credentials.encode() if credentials else b""
    if not is_api_key(settings, given):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials if credentials else ""


ApiKeyDep = Annotated[str, Depends(require_api_key)]
