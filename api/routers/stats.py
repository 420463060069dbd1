"""Journey analytics under /v1 (API key required): the funnel and experiment results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from api.deps import SessionDep
from api.schemas.common import DateTimeIn, ErrorOut
from api.schemas.journeys import JourneyName
from api.schemas.stats import JourneyStatsOut
from journeyman.stats import StatsFilter, journey_stats
from persistence.models import as_utc
from workflows import catalog

router = APIRouter(prefix="/journeys", tags=["stats"])


def stats_filter(
    name: JourneyName,
    since: Annotated[
        DateTimeIn | None,
        Query(
            description="Enrollments that entered at or after this instant (ISO 8601; UTC "
            "when no offset)."
        ),
    ] = None,
    until: Annotated[
        DateTimeIn | None, Query(description="... and before this instant (exclusive).")
    ] = None,
    version: Annotated[int | None, Query(ge=1, description="Only this journey version.")] = None,
) -> StatsFilter:
    """The query of both the stats API and the HTML report: 404 unknown, 422 inconsistent."""
    catalog.get(name)  # UnknownJourneyError -> 404
    known = sorted(cls.version for cls in catalog.all_versions() if cls.name == name)
    if version is not None and version not in known:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"journey '{name}' has no version {version} (versions: {known})",
        )
    since = as_utc(since) if since else None
    until = as_utc(until) if until else None
    if since and until and since > until:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "'since' must not be after 'until'"
        )
    return StatsFilter(journey=name, since=since, until=until, version=version)


StatsFilterDep = Annotated[StatsFilter, Depends(stats_filter)]


@router.get(
    "/{name}/stats",
    response_model=JourneyStatsOut,
    responses={
        404: {"model": ErrorOut, "description": "Unknown journey or version."},
        422: {"model": ErrorOut, "description": "A bad date, or `since` after `until`."},
    },
)
async def get_journey_stats(where: StatsFilterDep, session: SessionDep) -> JourneyStatsOut:
    """Enrollments by status, each step's funnel numbers, and each split step's experiment."""
    return JourneyStatsOut.of(await journey_stats(session, where))
