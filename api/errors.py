"""Failures mapped to JSON answers: domain errors to 4xx, unreachable backends to 503.

Bad input never becomes a 500, and no answer carries a traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
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


async def _bad_request(request: Request, exc: Exception) -> Response:
    # FastAPI answers 400 "error parsing the body" for a body `json.loads` fails on with
    # anything but a JSON syntax error: bytes that are not UTF-8 (JSON is UTF-8), or nesting
    # deep enough to exhaust the recursion limit. Both are malformed JSON, so they get the
    # 422 a syntax error gets, saying what is wrong; other 400s are left as they are.
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    why = None
    if isinstance(cause, UnicodeDecodeError):
        why = f"the body is not UTF-8 text (byte {cause.start})"
    elif isinstance(cause, RecursionError):
        why = "the body nests JSON too deeply"
    if why is None:
        return await http_exception_handler(request, exc)
    problem = {"type": "json_invalid", "loc": ["body"], "msg": f"JSON decode error: {why}"}
    return JSONResponse({"detail": [problem]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    # Starlette's `Allow` names only the methods of the first route matching the path; a path
    # served by several routes (GET and POST /u/{token}) deserves all of them (RFC 9110
    # 15.5.6). The OpenAPI document knows every route by path template.
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    allowed: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            allowed |= {method.upper() for method in operations}
    if "GET" in allowed:
        allowed.add("HEAD")  # Starlette answers HEAD wherever it answers GET
    response = await http_exception_handler(request, exc)
    if allowed:
        response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


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
    app.add_exception_handler(status.HTTP_400_BAD_REQUEST, _bad_request)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.add_exception_handler(UnknownJourneyError, _unknown_journey)
    for unknown_contact in (ContactNotFoundError, UnknownContactError):
        app.add_exception_handler(unknown_contact, _unknown_contact)
    app.add_exception_handler(EventConflictError, _conflict)
    app.add_exception_handler(RPCError, _temporal_failed)
    for database_failure in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(database_failure, _database_failed)
    app.add_exception_handler(RuntimeError, _runtime_error)
    app.add_exception_handler(Exception, _unexpected)
