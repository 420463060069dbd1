"""Events: the behaviour facts that start and steer journeys."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from api.schemas.common import ErrorOut
from api.schemas.events import (
    BatchItem,
    EventAccepted,
    EventBatchAccepted,
    EventBatchIn,
    EventIn,
    JourneyRouting,
)
from api.services.events import BatchOutcome, ingest_batch, ingest_event
from journeyman.enrollments import EnrollmentService
from persistence import Database
from workflows.contracts import StartJourneyResult

router = APIRouter(prefix="/events", tags=["events"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventAccepted,
    responses={409: {"model": ErrorOut, "description": "The id was used for another event."}},
)
async def post_event(event_in: EventIn, request: Request) -> EventAccepted:
    """Record an event and route it: which enrollments it started or signalled.

    Sending the same `id` again returns the first answer and has no second effect.
    """
    database, enrollments = _parts(request)
    routed = await ingest_event(database=database, enrollments=enrollments, event_in=event_in)
    return EventAccepted(id=routed.id, journeys=routing_public(routed.journeys))


@router.post("/batch", status_code=status.HTTP_202_ACCEPTED, response_model=EventBatchAccepted)
async def post_events(batch: EventBatchIn, request: Request) -> EventBatchAccepted:
    """Up to 1,000 events; one result per event, in order.

    The batch is validated as a whole (one malformed event: 422, nothing stored). An id
    already used for a different event is reported on its item (`conflict`) while the other
    events go through. A contact's events are routed in the order given.
    """
    database, enrollments = _parts(request)
    outcomes = await ingest_batch(database=database, enrollments=enrollments, events=batch.events)
    return EventBatchAccepted(results=[_item(outcome) for outcome in outcomes])


def _parts(request: Request) -> tuple[Database, EnrollmentService]:
    """The app's database and enrollment service, read straight from `app.state`.

    Not through `api.deps`' DatabaseDep/EnrollmentsDep: FastAPI runs a plain-function
    dependency in its thread pool, a thread round trip per dependency and request that the
    intake, the hottest endpoint, does without."""
    state = request.app.state
    database: Database = state.database
    enrollments: EnrollmentService = state.enrollments
    return database, enrollments


def routing_public(journeys: list[StartJourneyResult]) -> list[JourneyRouting]:
    """Routing results as the API shows them (also for consent events)."""
    return [
        JourneyRouting(
            journey=r.journey, workflow_id=r.workflow_id or None, action=r.action, reason=r.reason
        )
        for r in journeys
    ]


def _item(outcome: BatchOutcome) -> BatchItem:
    if outcome.routed is None:
        return BatchItem(
            index=outcome.index, status="conflict", id=outcome.id, detail=outcome.conflict
        )
    return BatchItem(
        index=outcome.index,
        status="accepted",
        id=outcome.id,
        journeys=routing_public(outcome.routed.journeys),
    )
