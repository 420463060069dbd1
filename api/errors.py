"""Failures mapped to JSON answers: domain errors to 4xx, unreachable backends to 503.

Bad input never becomes a 500, and no answer carries a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from temporalio.service import RPCError

from api.services.contacts import ContactNotFoundError
from api.services.events import EventConflictError
from journeyman.unsubscribe import UnknownContactError
from workflows.catalog import UnknownJourneyError, latest

logger = logging.getLogger("journeyman.api")

RETRY_AFTER_SECONDS = "5"


def _detail(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def _unavailable(what: str) -> JSONResponse:
    return _detail(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"{what} is unreachable; retry later (retrying with the same event id is safe)",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    # Like FastAPI's own answer, minus the echoed `input`: it can be large (a whole rejected
    # batch), personal (an address), or not even JSON (NaN), which would turn a 422 into a 500.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [
        {key: value for key, value in problem.items() if key != "input"} for problem in errors
    ]
    return JSONResponse(
        {"detail": jsonable_encoder(problems)},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _unknown_journey(_: Request, exc: Exception) -> JSONResponse:
    known = ", ".join(cls.name for cls in latest())
    return _detail(404, f"unknown journey '{exc.args[0]}' (known: {known})")


async def _unknown_contact(_: Request, exc: Exception) -> JSONResponse:
    return _detail(404, str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return _detail(409, str(exc))


async def _temporal_failed(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Temporal call failed on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable("Temporal")


async def _database_failed(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Database failed on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable("The database")


async def _runtime_error(request: Request, exc: Exception) -> JSONResponse:
    # A lazy Temporal client that cannot connect raises a plain RuntimeError.
    if str(exc).startswith("Failed client connect"):
        return await _temporal_failed(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unexpected error on %s %s", request.method, request.url.path)
    return _detail(500, "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(UnknownJourneyError, _unknown_journey)
    for unknown_contact in (ContactNotFoundError, UnknownContactError):
        app.add_exception_handler(unknown_contact, _unknown_contact)
    app.add_exception_handler(EventConflictError, _conflict)
    app.add_exception_handler(RPCError, _temporal_failed)
    for database_failure in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(database_failure, _database_failed)
    app.add_exception_handler(RuntimeError, _runtime_error)
    app.add_exception_handler(Exception, _unexpected)
