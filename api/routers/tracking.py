"""Public tracking routes: the open pixel and the click redirect in every email.

Public on purpose: mail clients and the people clicking have no API key; the signed token is
the authorisation (`journeyman.signing`: message id, and for clicks the link's index).

- `GET /t/o/{token}` answers a 1x1 transparent GIF, never cached (so every open reaches us).
  A forged, edited or expired token, or one naming no message, gets a 400 / 404 that still
  carries the GIF: an old email must not show a broken-image icon. Nothing is recorded then.
- `GET /t/c/{token}` redirects (302) to the URL stored for that link of that message, and only
  there: no open redirect. A bad token or a link index the message does not have gets a JSON
  400 / 404 and no redirect, and nothing is recorded.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from journeyman.engagement import EngagementService, InvalidToken, UnknownLinkError

router = APIRouter(prefix="/t", tags=["tracking"])

# The smallest transparent GIF (1x1, one transparent colour).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
TokenPath = Annotated[str, Path(description="The signed token from the tracking link.")]


async def _engagement(request: Request) -> EngagementService:
    # Built per request from the lifespan's shared parts: it holds no state of its own.
    state = request.app.state
    return EngagementService(
        database=state.database, enrollments=state.enrollments, settings=state.settings
    )


EngagementDep = Annotated[EngagementService, Depends(_engagement)]

GIF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/gif": {}}, "description": "The 1x1 pixel; the open is recorded."},
    400: {"content": {"image/gif": {}}, "description": "Forged, edited or expired; the pixel."},
    404: {"content": {"image/gif": {}}, "description": "No such message; the pixel."},
}
REDIRECT: dict[int | str, dict[str, Any]] = {
    302: {"description": "To the link's original URL; the click is recorded."},
    400: {"description": "Forged, edited or expired link; nothing recorded."},
    404: {"description": "No such message or link; nothing recorded."},
}


@router.get("/o/{token}", response_class=Response, responses=GIF)
async def open_pixel(token: TokenPath, engagement: EngagementDep) -> Response:
    """Record an open (the first one also sets `opened_at` and emits `email.opened`)."""
    code = status.HTTP_200_OK
    try:
        await engagement.opened(engagement.read_open(token))
    except InvalidToken:
        code = status.HTTP_400_BAD_REQUEST
    except UnknownLinkError:
        code = status.HTTP_404_NOT_FOUND
    return Response(PIXEL, status_code=code, media_type="image/gif", headers=NO_CACHE)


@router.get(
    "/c/{token}",
    response_class=RedirectResponse,
    status_code=status.HTTP_302_FOUND,
    responses=REDIRECT,
)
async def click(token: TokenPath, engagement: EngagementDep) -> Response:
    """Record a click (emits `email.clicked`) and redirect to the link's original URL."""
    try:
        hit = await engagement.clicked(engagement.read_click(token))
    except InvalidToken as err:
        return _problem(status.HTTP_400_BAD_REQUEST, f"{err}")
    except UnknownLinkError:
        return _problem(status.HTTP_404_NOT_FOUND, "this link is not in the message it names")
    return RedirectResponse(str(hit.url), status_code=status.HTTP_302_FOUND, headers=NO_CACHE)


def _problem(code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=NO_CACHE)
