"""A ceiling on request bodies, for every route, before any of it is parsed.

An ASGI middleware: a declared `Content-Length` over the limit is answered 413 at once,
unread; a body without one (chunked) is counted as it streams in, and the read that crosses
the limit fails with the same 413. Routes taking uploads (bulk enrollment lists) have a
larger limit of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routers.bulk import MAX_BODY_BYTES as BULK_UPLOAD_BYTES
from journeyman.settings import Settings

_BULK_UPLOAD = re.compile(r"^/v1/journeys/[^/]+/bulk-enrollments/?$")


class BodyTooLargeError(HTTPException):
    """Raised from `receive` when a streamed body crosses the limit.

    An HTTPException so that FastAPI, which turns any other failure while reading a body
    into a 400, passes it on to its 413 answer.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, too_large(limit))


def too_large(limit: int) -> str:
    return (
        f"request body over {limit} bytes: split it (fewer events per batch; a long list of "
        "contacts into several bulk enrollments, or a segment)"
    )


@dataclass(frozen=True)
class BodyLimits:
    default: int
    # (path pattern, limit): the first match wins.
    routes: list[tuple[re.Pattern[str], int]] = field(default_factory=list)

    def for_path(self, path: str) -> int:
        for pattern, limit in self.routes:
            if pattern.match(path):
                return limit
        return self.default


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(limit, scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            # Read outside FastAPI's handlers (a middleware, say): answer here if still can.
            if started:
                raise
            await _refuse(limit, scope, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(limit: int, scope: Scope, send: Send) -> None:
    response = JSONResponse(
        {"detail": too_large(limit)}, status_code=status.HTTP_413_CONTENT_TOO_LARGE
    )
    # The body is left unread; the server closes the connection rather than reuse it.
    response.headers["Connection"] = "close"
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def install_body_limits(app: FastAPI, settings: Settings) -> None:
    limits = BodyLimits(
        default=settings.max_request_bytes,
        routes=[(_BULK_UPLOAD, max(BULK_UPLOAD_BYTES, settings.max_request_bytes))],
    )
    app.add_middleware(BodyLimitMiddleware, limits=limits)
