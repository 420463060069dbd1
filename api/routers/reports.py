"""The HTML report of a journey, for people: `GET /journeys/{name}`, outside /v1.

A browser cannot send a bearer header, so the API key also comes as HTTP Basic's password
(any user name): without it the answer is a 401 with `WWW-Authenticate: Basic`, and the
browser prompts. Scripts may send `Authorization: Bearer <key>` as for /v1.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from api.deps import PagesDep, Scope, SessionDep, SettingsDep, ingest_refused, key_scope
from api.routers.stats import StatsFilterDep
from api.schemas.common import json_errors
from api.schemas.stats import JourneyStatsOut
from journeyman.stats import journey_stats

router = APIRouter(tags=["reports"])

REALM = 'Basic realm="Journeyman", charset="UTF-8"'


def _given_key(authorization: str) -> bytes:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return b""
        return decoded.partition(b":")[2]  # the password; the user name is ignored
    return b""


async def require_report_key(request: Request, settings: SettingsDep) -> None:
    scope = key_scope(settings, _given_key(request.headers.get("authorization", "")))
    if scope is Scope.INGEST:  # a backend's key: known, but the report is for operators
        raise ingest_refused(request)
    if scope is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key: log in with the API key as password, or send "
            "'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": REALM},
        )


@router.get(
    "/journeys/{name}",
    response_class=HTMLResponse,
    dependencies=[Depends(require_report_key)],
    # The page is HTML; its errors are JSON like everywhere else.
    responses=json_errors(
        {
            401: "Missing or wrong API key.",
            403: "An ingest-only key: the report is for operators.",
            404: "Unknown journey or version.",
            422: "A bad date, or `since` after `until`.",
        }
    ),
)
async def journey_report(
    where: StatsFilterDep, session: SessionDep, pages: PagesDep
) -> HTMLResponse:
    """The journey's funnel (an SVG chart), its step table and its experiments, as a page."""
    stats = JourneyStatsOut.of(await journey_stats(session, where))
    return pages.render("report.html", **report_context(stats))


# The funnel chart's geometry, in SVG user units: drawn here so the page needs no script.
LABEL_WIDTH = 230
BAR_WIDTH = 420
ROW_HEIGHT = 30
BAR_HEIGHT = 20


@dataclass(frozen=True)
class FunnelBar:
    label: str
    count: int
    share: float | None  # of entered
    kind: str  # entered | step | converted: the bar's colour
    y: int
    width: float


def funnel_bars(stats: JourneyStatsOut) -> list[FunnelBar]:
    """Entered, then each send step's reached, sent, opened and clicked, then converted."""
    rows: list[tuple[str, int, str]] = [("Entered", stats.enrollments.entered, "entered")]
    for step in stats.steps:
        if step.kind != "send":
            continue
        for what in ("reached", "sent", "opened", "clicked"):
            rows.append((f"{step.name}: {what}", getattr(step, what), "step"))
    rows.append(("Converted", stats.enrollments.converted, "converted"))
    entered = stats.enrollments.entered
    return [
        FunnelBar(
            label=label,
            count=count,
            share=count / entered if entered else None,
            kind=kind,
            y=index * ROW_HEIGHT,
            width=round(BAR_WIDTH * min(count / entered, 1.0), 1) if entered else 0.0,
        )
        for index, (label, count, kind) in enumerate(rows)
    ]


def report_context(stats: JourneyStatsOut) -> dict[str, Any]:
    bars = funnel_bars(stats)
    return {
        "stats": stats,
        "bars": bars,
        "chart": {
            "label_width": LABEL_WIDTH,
            "bar_width": BAR_WIDTH,
            "bar_height": BAR_HEIGHT,
            "width": LABEL_WIDTH + BAR_WIDTH + 110,
            "height": len(bars) * ROW_HEIGHT,
        },
    }
