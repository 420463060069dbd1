"""One-click unsubscribe (RFC 8058): the links in messages and their `List-Unsubscribe` header.

Public on purpose: the signed token is the authorisation, and the people who click have no
API key. `GET` only shows a confirmation page, because mail scanners and link previews fetch
links; `POST` (the page's button, or a mail client's one-click request with the body
`List-Unsubscribe=One-Click`) unsubscribes. The body is not read: the token says everything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from fastapi.responses import HTMLResponse

from api.deps import ConsentDep, PagesDep
from journeyman.signing import InvalidToken
from journeyman.unsubscribe import UnknownContactError

router = APIRouter(prefix="/u", tags=["unsubscribe"], default_response_class=HTMLResponse)

TokenPath = Annotated[str, Path(description="The signed token from the unsubscribe link.")]
PAGES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page."},
    400: {"content": {"text/html": {}}, "description": "Forged, foreign or expired link."},
    404: {"content": {"text/html": {}}, "description": "The contact no longer exists."},
}


@router.get("/{token}", responses=PAGES)
async def confirm_unsubscribe(
    token: TokenPath, consent: ConsentDep, pages: PagesDep
) -> HTMLResponse:
    """A confirmation page whose button unsubscribes; changes nothing by itself."""
    try:
        claim = consent.read_link(token)
        state = await consent.current(claim.contact_id)
    except InvalidToken as err:
        return _bad_link(pages, err)
    except UnknownContactError:
        return _gone(pages)
    page = "unsubscribe.html" if state.consent[claim.channel] else "unsubscribed.html"
    return pages.render(page, channel=claim.channel)


@router.post("/{token}", responses=PAGES)
async def unsubscribe(token: TokenPath, consent: ConsentDep, pages: PagesDep) -> HTMLResponse:
    """Unsubscribe at once; a second POST shows the same page and records nothing."""
    try:
        claim = consent.read_link(token)
        await consent.unsubscribe(claim)
    except InvalidToken as err:
        return _bad_link(pages, err)
    except UnknownContactError:
        return _gone(pages)
    return pages.render("unsubscribed.html", channel=claim.channel)


def _bad_link(pages: PagesDep, err: InvalidToken) -> HTMLResponse:
    return pages.render(
        "link_problem.html",
        status.HTTP_400_BAD_REQUEST,
        title="This unsubscribe link does not work",
        message=f"{str(err).capitalize()}.",
    )


def _gone(pages: PagesDep) -> HTMLResponse:
    return pages.render(
        "link_problem.html",
        status.HTTP_404_NOT_FOUND,
        title="We could not find your subscription",
        message="The person this link was made for is no longer on our list.",
    )
