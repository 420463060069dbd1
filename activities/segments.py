"""The `in_segment` activity: is the journey's contact in a segment at the workflow's clock.

Evaluated by the segment's SQL restricted to the one contact, as of `request.at` (the
workflow's `now`, so a replay-safe moment and time windows relative to the journey's time).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.parts import WorkerParts
from journeyman.segments import UnknownSegmentError, is_member
from journeyman.settings import Settings
from persistence import Database
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    IN_SEGMENT,
    SegmentCheck,
    SegmentCheckResult,
)


class SegmentActivities:
    def __init__(self, *, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings

    @activity.defn(name=IN_SEGMENT)
    async def in_segment(self, request: SegmentCheck) -> SegmentCheckResult:
        try:
            async with self._database.session() as session:
                member = await is_member(
                    session,
                    request.segment,
                    request.contact_id,
                    now=request.at,
                    settings=self._settings,
                )
        except UnknownSegmentError as err:
            # A journey naming a segment that does not exist: retrying cannot help.
            raise ApplicationError(
                str(err), type=ERR_JOURNEY_DEFINITION, non_retryable=True
            ) from err
        return SegmentCheckResult(segment=request.segment, member=member)


def segment_parts(database: Database, settings: Settings) -> WorkerParts:
    """The worker's share of segments: the `in_segment` activity (no workflows)."""
    activities = SegmentActivities(database=database, settings=settings)
    return WorkerParts(workflows=[], activities=[activities.in_segment])
