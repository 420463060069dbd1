"""Event intake: store (idempotent on id), route, remember the answer.

The order is what makes a retry safe. The event row is written first; routing then starts and
signals workflows, which de-duplicate by event id; the answer is stored last. A retry with the
same id returns the stored answer, or, if an earlier attempt died before storing it, routes
again (harmless, for the same reason) and stores it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlmodel import col

from api.schemas.events import EventIn
from api.services.contacts import ensure_contact
from api.services.sql import insert_if_absent
from journeyman.dormancy import wake
from journeyman.enrollments import EnrollmentService
from journeyman.metrics import count_ingested, count_routed
from persistence import Database, EventRecord
from persistence.models import as_utc, utcnow
from workflows.contracts import Event, StartJourneyResult

# Contacts of one batch are routed side by side; one contact's events stay in order.
BATCH_CONCURRENCY = 8


class EventConflictError(ValueError):
    """The id was already used for a different event."""

    def __init__(self, event_id: str, differences: list[str]) -> None:
        super().__init__(
            f"event id '{event_id}' was already used for a different event "
            f"({', '.join(differences)} differ); use a new id for a new event"
        )
        self.event_id = event_id


@dataclass
class RoutedEvent:
    id: str
    journeys: list[StartJourneyResult]


@dataclass
class BatchOutcome:
    """One event of a batch: routed, or refused for reusing an id."""

    index: int
    id: str
    routed: RoutedEvent | None = None
    conflict: str | None = None


async def ingest_event(
    *, database: Database, enrollments: EnrollmentService, event_in: EventIn
) -> RoutedEvent:
    event = Event(
        id=event_in.id or str(uuid.uuid4()),
        contact_id=event_in.contact_id,
        name=event_in.name,
        properties=event_in.properties,
        occurred_at=event_in.occurred_at or utcnow(),
    )
    earlier = await _store(database, event)
    if earlier is None:
        count_ingested(event.name)
    else:
        differences = _differences(earlier, event_in)
        if differences:
            raise EventConflictError(event.id, differences)
        if earlier.routing is not None:
            return RoutedEvent(event.id, [StartJourneyResult(**r) for r in earlier.routing])
    journeys = await enrollments.route_and_record(earlier.as_event() if earlier else event)
    count_routed(event.name, journeys)
    return RoutedEvent(event.id, journeys)


async def ingest_batch(
    *, database: Database, enrollments: EnrollmentService, events: list[EventIn]
) -> list[BatchOutcome]:
    """Every event of the batch, answered in order.

    An id reused for a different event is reported on that item and the others go on; a
    failure of the database or Temporal fails the request (retrying it is safe for events
    with ids).
    """
    outcomes: list[BatchOutcome | None] = [None] * len(events)
    by_contact: dict[str, list[int]] = {}
    for index, event_in in enumerate(events):
        by_contact.setdefault(event_in.contact_id, []).append(index)
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def ingest_in_order(indexes: list[int]) -> None:
        async with limit:
            for index in indexes:
                outcomes[index] = await _ingest_one(index, events[index])

    async def _ingest_one(index: int, event_in: EventIn) -> BatchOutcome:
        try:
            routed = await ingest_event(
                database=database, enrollments=enrollments, event_in=event_in
            )
        except EventConflictError as err:
            return BatchOutcome(index=index, id=err.event_id, conflict=str(err))
        return BatchOutcome(index=index, id=routed.id, routed=routed)

    try:
        async with asyncio.TaskGroup() as group:
            for indexes in by_contact.values():
                group.create_task(ingest_in_order(indexes))
    except* Exception as failure:
        # Surface the first real cause so the API maps it (503, ...) like a single event's.
        raise failure.exceptions[0] from None
    return [outcome for outcome in outcomes if outcome is not None]


async def _store(database: Database, event: Event) -> EventRecord | None:
    """Insert the event and its bare contact; None if stored now, else the earlier row."""
    occurred_at = event.occurred_at or utcnow()
    async with database.session() as session:
        inserted = await insert_if_absent(
            session,
            database.dialect,
            EventRecord,
            key=col(EventRecord.id),
            values={
                "id": event.id,
                "contact_id": event.contact_id,
                "name": event.name,
                "properties": event.properties,
                "occurred_at": occurred_at,
                "received_at": utcnow(),
            },
        )
        if inserted:
            await ensure_contact(
                session=session, dialect=database.dialect, contact_id=event.contact_id
            )
            await wake(session, event.contact_id, as_utc(occurred_at))
            await session.commit()
            return None
        await session.rollback()
        return await session.get(EventRecord, event.id)


def _differences(earlier: EventRecord, event_in: EventIn) -> list[str]:
    differences = [
        name
        for name, before, now in (
            ("contact_id", earlier.contact_id, event_in.contact_id),
            ("name", earlier.name, event_in.name),
            ("properties", earlier.properties, event_in.properties),
        )
        if before != now
    ]
    # A retry without occurred_at matches whatever time the first attempt stored.
    if event_in.occurred_at is not None and as_utc(earlier.occurred_at) != event_in.occurred_at:
        differences.append("occurred_at")
    return differences
