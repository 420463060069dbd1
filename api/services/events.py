"""Event intake: store (idempotent on id), route, remember the answer.

The order is what makes a retry safe. The event row is written first; routing then starts and
signals workflows, which de-duplicate by event id; the answer is stored last. A retry with the
same id returns the stored answer, or, if an earlier attempt died before storing it, routes
again (harmless, for the same reason) and stores it.

Storing and recording go through one group-commit writer per database (`IntakeWriter`): the
events of one request - or of all requests in flight - are stored with their bare contacts,
dormancy wake-ups and the enrollment rows routing will read in one transaction, and their
answers recorded in one statement. A batch is routed contact by contact, a contact's events
in the order given, many contacts side by side.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.schemas.events import EventIn
from api.services.contacts import ensure_contacts_awake
from api.services.sql import dialect_insert
from journeyman.enrollments import (
    EnrollmentService,
    KnownEnrollments,
    journeys_to_read,
    read_known,
    record_routings,
)
from journeyman.metrics import count_ingested, count_routed
from persistence import Database, EventRecord
from persistence.group_commit import GroupCommit
from persistence.models import as_utc, utcnow
from workflows.contracts import Event, StartJourneyResult

# Batch events routed side by side in this process, all batches together (Temporal RPCs in
# flight: enough to keep one server busy, few enough that none waits out its RPC timeout);
# one contact's events stay in order.
ROUTING_CONCURRENCY = 64

_EVENTS: Table = EventRecord.__table__  # type: ignore[attr-defined]


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


# ----- storing ---------------------------------------------------------------------------


@dataclass
class Stored:
    """What storing found for one event: stored now, or the event stored earlier under its id
    (with its routing answer, when one was recorded)."""

    inserted: bool
    earlier: Event | None = None
    routing: list[StartJourneyResult] | None = None


@dataclass
class _StoreJob:
    events: list[Event]


@dataclass
class _StoreAnswer:
    stored: list[Stored]
    known: KnownEnrollments


@dataclass
class _RecordJob:
    routings: list[tuple[str, list[StartJourneyResult]]]


_Job = _StoreJob | _RecordJob


class IntakeWriter:
    """The intake's database writes, grouped across concurrent requests (`GroupCommit`)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._group: GroupCommit[_Job, _StoreAnswer | None] = GroupCommit(self._write)
        self._limit: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def routing_limit(self) -> asyncio.Semaphore:
        """The process's limit on batch events routed at once (`ROUTING_CONCURRENCY`); one
        per event loop, as a semaphore belongs to its loop (tests run several)."""
        loop = asyncio.get_running_loop()
        if self._limit is None or self._limit[0] is not loop:
            self._limit = (loop, asyncio.Semaphore(ROUTING_CONCURRENCY))
        return self._limit[1]

    async def store(self, events: list[Event]) -> _StoreAnswer:
        """Insert the events (ids unique within the list) and the bare contacts of the new
        ones, wake dormant contacts; read what routing them needs."""
        answer = await self._group.submit(_StoreJob(events))
        assert answer is not None
        return answer

    async def record(self, routings: list[tuple[str, list[StartJourneyResult]]]) -> None:
        if routings:
            await self._group.submit(_RecordJob(routings))

    async def _write(self, jobs: list[_Job]) -> list[_StoreAnswer | None]:
        events = [e for job in jobs if isinstance(job, _StoreJob) for e in job.events]
        routings = [r for job in jobs if isinstance(job, _RecordJob) for r in job.routings]
        stored: list[Stored] = []
        known = KnownEnrollments()
        async with self._database.writer_transaction() as connection:
            await record_routings(connection, routings)
            if events:
                stored = await store_events(connection, self._database.dialect, events)
                contacts = {
                    _routed(event, found).contact_id
                    for event, found in zip(events, stored, strict=True)
                }
                known = await read_known(connection, contacts, journeys_to_read(events))
        answers: list[_StoreAnswer | None] = []
        position = 0
        for job in jobs:
            if isinstance(job, _RecordJob):
                answers.append(None)
                continue
            answers.append(_StoreAnswer(stored[position : position + len(job.events)], known))
            position += len(job.events)
        return answers


def intake_writer(database: Database) -> IntakeWriter:
    """The one writer of this process for the database."""
    writer = database.shared.get("intake_writer")
    if not isinstance(writer, IntakeWriter):
        writer = database.shared["intake_writer"] = IntakeWriter(database)
    return writer


async def store_events(
    connection: AsyncConnection, dialect: str, events: Sequence[Event]
) -> list[Stored]:
    """Store events in the caller's transaction: one insert for all (ON CONFLICT DO NOTHING),
    one read of the rows whose ids were taken (only if any were), one upsert of the contacts
    of the new ones. An id repeated within `events` is stored once; its later occurrences
    find the first as the earlier event."""
    now = utcnow()
    first: dict[str, Event] = {}
    for event in events:
        first.setdefault(event.id, event)
    # Ids in order: concurrent writers then wait on each other's rows in the same order.
    rows = [
        {
            "id": event.id,
            "contact_id": event.contact_id,
            "name": event.name,
            "properties": event.properties,
            "occurred_at": event.occurred_at or now,
            "received_at": now,
        }
        for event in sorted(first.values(), key=lambda event: event.id)
    ]
    result = await connection.execute(_insert_events(dialect), rows)
    inserted = {row[0] for row in result}
    earlier = await _stored_rows(connection, [i for i in first if i not in inserted])

    latest: dict[str, datetime] = {}
    for event in first.values():
        if event.id in inserted:
            acted = as_utc(event.occurred_at or now)
            if event.contact_id not in latest or latest[event.contact_id] < acted:
                latest[event.contact_id] = acted
    await ensure_contacts_awake(connection, dialect, latest)

    answers: list[Stored] = []
    seen: set[str] = set()
    for event in events:
        if event.id in earlier:
            answers.append(earlier[event.id])
        elif event.id in seen:
            answers.append(Stored(inserted=False, earlier=first[event.id]))
        else:
            answers.append(Stored(inserted=True))
        seen.add(event.id)
    return answers


@functools.cache
def _insert_events(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING id, built once per dialect (see
    journeyman.enrollments' statements: building it per request costs more than it saves)."""
    statement = dialect_insert(dialect, _EVENTS).on_conflict_do_nothing(index_elements=["id"])
    return statement.returning(_EVENTS.c.id)


async def _stored_rows(connection: AsyncConnection, ids: list[str]) -> dict[str, Stored]:
    if not ids:
        return {}
    table = _EVENTS
    result = await connection.execute(
        select(
            table.c.id,
            table.c.contact_id,
            table.c.name,
            table.c.properties,
            table.c.occurred_at,
            table.c.routing,
        ).where(table.c.id.in_(ids))
    )
    found: dict[str, Stored] = {}
    for event_id, contact_id, name, properties, occurred_at, routing in result:
        event = Event(
            id=event_id,
            contact_id=contact_id,
            name=name,
            properties=dict(properties),
            occurred_at=as_utc(occurred_at),
        )
        answer = [StartJourneyResult(**r) for r in routing] if routing is not None else None
        found[event_id] = Stored(inserted=False, earlier=event, routing=answer)
    return found


def _routed(event: Event, stored: Stored) -> Event:
    """The event that routing delivers: the stored one (a retry may leave occurred_at out)."""
    return stored.earlier if stored.earlier is not None else event


# ----- the intake ------------------------------------------------------------------------


async def ingest_event(
    *, database: Database, enrollments: EnrollmentService, event_in: EventIn
) -> RoutedEvent:
    event = _event(event_in)
    answer = await intake_writer(database).store([event])
    [stored] = answer.stored
    settled = _settle(stored, event_in, event.id)
    if settled is not None:
        return settled
    if stored.inserted:
        count_ingested(event.name)
    journeys = await _route(database, enrollments, _routed(event, stored), answer.known)
    count_routed(event.name, journeys)
    return RoutedEvent(event.id, journeys)


async def ingest_batch(
    *, database: Database, enrollments: EnrollmentService, events: list[EventIn]
) -> list[BatchOutcome]:
    """Every event of the batch, answered in order.

    An id reused for a different event is reported on that item and the others go on; an id
    repeated with the same event is one event, answered alike on each item. A failure of the
    database or Temporal fails the request (retrying it is safe for events with ids).
    """
    given = [_event(event_in) for event_in in events]
    first: dict[str, int] = {}
    for index, event in enumerate(given):
        first.setdefault(event.id, index)
    unique = [given[index] for index in first.values()]
    answer = await intake_writer(database).store(unique)
    stored = dict(zip(first, answer.stored, strict=True))

    outcomes: list[BatchOutcome] = []
    # The occurrence that routes each id (the first one that is not a conflict) and those
    # answered like it.
    owners: dict[str, int] = {}
    answered_like: dict[int, int] = {}
    for index, (event, event_in) in enumerate(zip(given, events, strict=True)):
        found = stored[event.id]
        reference = found.earlier or given[first[event.id]]
        differences = _differences(reference, event_in)
        if differences:
            conflict = str(EventConflictError(event.id, differences))
            outcomes.append(BatchOutcome(index=index, id=event.id, conflict=conflict))
            continue
        outcomes.append(BatchOutcome(index=index, id=event.id))
        if event.id in owners:
            answered_like[index] = owners[event.id]
            continue
        owners[event.id] = index
        if found.routing is not None:
            outcomes[index].routed = RoutedEvent(event.id, found.routing)
        elif found.inserted:
            count_ingested(event.name)

    to_route = [
        (index, _routed(given[index], stored[given[index].id]))
        for index in owners.values()
        if outcomes[index].routed is None
    ]
    routed = await _route_many(database, enrollments, to_route, answer.known)
    for index, journeys in routed.items():
        outcomes[index].routed = RoutedEvent(given[index].id, journeys)
        count_routed(given[index].name, journeys)
    for index, owner in answered_like.items():
        outcomes[index].routed = outcomes[owner].routed
    return outcomes


def _event(event_in: EventIn) -> Event:
    return Event(
        id=event_in.id or str(uuid.uuid4()),
        contact_id=event_in.contact_id,
        name=event_in.name,
        properties=event_in.properties,
        occurred_at=event_in.occurred_at or utcnow(),
    )


def _settle(stored: Stored, event_in: EventIn, event_id: str) -> RoutedEvent | None:
    """A stored id: 409 for a different event, the stored answer for a retry (None: route)."""
    if stored.earlier is None:
        return None
    differences = _differences(stored.earlier, event_in)
    if differences:
        raise EventConflictError(event_id, differences)
    if stored.routing is not None:
        return RoutedEvent(event_id, stored.routing)
    return None


async def _route(
    database: Database, enrollments: EnrollmentService, event: Event, known: KnownEnrollments
) -> list[StartJourneyResult]:
    if not isinstance(enrollments, EnrollmentService):
        # Another router (a test's stand-in) routes and records by itself.
        return await enrollments.route_and_record(event)
    journeys = await enrollments.route(event, known=known)
    await intake_writer(database).record([(event.id, journeys)])
    return journeys


async def _route_many(
    database: Database,
    enrollments: EnrollmentService,
    events: list[tuple[int, Event]],
    known: KnownEnrollments,
) -> dict[int, list[StartJourneyResult]]:
    """Route the events, each contact's in the given order; record every answer at once.

    On a failure, the answers already obtained are still recorded before it propagates (a
    retry then answers those from the database)."""
    if not isinstance(enrollments, EnrollmentService):
        return {index: await enrollments.route_and_record(event) for index, event in events}
    by_contact: dict[str, list[tuple[int, Event]]] = {}
    for index, event in events:
        by_contact.setdefault(event.contact_id, []).append((index, event))
    limit = intake_writer(database).routing_limit()
    results: dict[int, list[StartJourneyResult]] = {}

    async def route_in_order(contact_events: list[tuple[int, Event]]) -> None:
        for index, event in contact_events:
            async with limit:
                results[index] = await enrollments.route(event, known=known)

    error: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            for contact_events in by_contact.values():
                group.create_task(route_in_order(contact_events))
    except* Exception as failed:
        # Surface the first real cause so the API maps it (503, ...) like a single event's.
        error = failed.exceptions[0]
    by_index = dict(events)
    await intake_writer(database).record(
        [(by_index[index].id, journeys) for index, journeys in results.items()]
    )
    if error is not None:
        raise error
    return results


def _differences(earlier: Event, event_in: EventIn) -> list[str]:
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
    if (
        event_in.occurred_at is not None
        and earlier.occurred_at is not None
        and as_utc(earlier.occurred_at) != event_in.occurred_at
    ):
        differences.append("occurred_at")
    return differences
