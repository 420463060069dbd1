"""Segment-entry triggers: a journey with `entry_segment = "<segment>"` enrolls each contact
when it enters that segment.

Entering is noticed when something about the contact changes: after an event of theirs was
routed (`EnrollmentService.route`) and after their contact record was written (the contacts
API). `check_entries` then evaluates, for that one contact, every segment some journey enters
on, and compares with `segment_memberships`:

- absent -> member: the row is inserted (insert-if-absent on its primary key, so of concurrent
  checks exactly one enters) and each journey on that segment is started with a
  `segment.entered` trigger event whose id names the segment, the contact and the moment;
- member -> absent: the row is deleted, so a later re-entry counts again (each journey's
  `reentry` rule still decides whether it enrolls a second time);
- otherwise nothing changes.

Only segments used as `entry_segment` are checked, and when no journey declares one the
check returns before touching the database. Membership that changes by time alone (a window
passing, a score decaying) is noticed at the contact's next change, not by itself; scheduled
segment enrollments cover "everyone who is in it now".
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, delete

from journeyman.segments.query import is_member
from journeyman.settings import Settings
from persistence import Database, SegmentMembership
from persistence.models import as_utc, utcnow
from workflows import catalog
from workflows.contracts import Event, StartJourneyRequest, StartJourneyResult
from workflows.runtime import Journey

SEGMENT_ENTERED = "segment.entered"
_EVENT_ID_MAX = 200  # enrollments.trigger_event_id

Starter = Callable[[StartJourneyRequest], Awaitable[StartJourneyResult]]
Journeys = Callable[[], Sequence[type[Journey]]]


@dataclass
class SegmentChange:
    """What a check found for one segment of one contact."""

    segment: str
    contact_id: str
    change: str  # "entered" | "left" | "unchanged"
    started: list[StartJourneyResult]


def entry_segments(journeys: Journeys = catalog.latest) -> dict[str, list[type[Journey]]]:
    """Segment -> the journeys entered by joining it (newest versions)."""
    found: dict[str, list[type[Journey]]] = {}
    for cls in journeys():
        if cls.entry_segment:
            found.setdefault(cls.entry_segment, []).append(cls)
    return found


def entry_event_id(segment: str, contact_id: str, entered_at: datetime) -> str:
    stamp = f"{as_utc(entered_at):%Y%m%dT%H%M%S%f}"
    plain = f"segment:{segment}:{contact_id}:{stamp}"
    if len(plain) <= _EVENT_ID_MAX:
        return plain
    digest = hashlib.sha256(contact_id.encode()).hexdigest()[:32]
    return f"segment:{segment}:{digest}:{stamp}"


async def check_entries(
    database: Database,
    settings: Settings,
    start: Starter,
    contact_id: str,
    *,
    now: datetime | None = None,
    journeys: Journeys = catalog.latest,
) -> list[SegmentChange]:
    """Compare the contact's membership of every entry segment with the recorded one, and
    start the journeys of the segments it entered. Returns one change per entry segment."""
    by_segment = entry_segments(journeys)
    if not by_segment:
        return []
    now = as_utc(now or utcnow())
    changes: list[SegmentChange] = []
    for segment, entered_by in sorted(by_segment.items()):
        async with database.session() as session:
            member = await is_member(session, segment, contact_id, now=now, settings=settings)
        if member:
            changes.append(await _enter(database, start, segment, contact_id, entered_by, now))
        else:
            changes.append(await _leave(database, segment, contact_id))
    return changes


def entry_checker(
    database: Database, settings: Settings, start: Starter
) -> Callable[[str], Awaitable[list[SegmentChange]]]:
    """`check_entries` bound to its parts: what the contacts API calls after a write."""

    async def check(contact_id: str) -> list[SegmentChange]:
        return await check_entries(database, settings, start, contact_id)

    return check


async def _enter(
    database: Database,
    start: Starter,
    segment: str,
    contact_id: str,
    journeys: list[type[Journey]],
    now: datetime,
) -> SegmentChange:
    row = SegmentMembership(segment=segment, contact_id=contact_id, entered_at=now)
    if not await database.insert_once(row):
        return SegmentChange(segment, contact_id, "unchanged", [])
    trigger = Event(
        id=entry_event_id(segment, contact_id, now),
        contact_id=contact_id,
        name=SEGMENT_ENTERED,
        properties={"segment": segment},
        occurred_at=now,
    )
    started: list[StartJourneyResult] = []
    try:
        for cls in journeys:
            started.append(await start(StartJourneyRequest(cls.name, contact_id, trigger=trigger)))
    except BaseException:
        # Not entered after all: the next check tries again (a journey already started gets
        # the new trigger under its own re-entry rule).
        await _leave(database, segment, contact_id)
        raise
    return SegmentChange(segment, contact_id, "entered", started)


async def _leave(database: Database, segment: str, contact_id: str) -> SegmentChange:
    async with database.session() as session:
        result = await session.exec(
            delete(SegmentMembership).where(
                col(SegmentMembership.segment) == segment,
                col(SegmentMembership.contact_id) == contact_id,
            )
        )
        await session.commit()
    change = "left" if result.rowcount else "unchanged"
    return SegmentChange(segment, contact_id, change, [])
