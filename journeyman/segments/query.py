"""Segment membership from the database: pages of members, counts, one contact.

Everything here compiles the segment's predicate to one SQL statement over `contacts` (see
`predicates`); nothing loads contacts into Python. `now` is explicit: windows ("no event in
30 days") and score decay are relative to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeyman.segments.definitions import SEGMENTS
from journeyman.segments.predicates import Context
from journeyman.segments.segment import Segment, UnknownSegmentError
from journeyman.settings import Settings, get_settings
from persistence.models import Contact

_BY_NAME = {segment.name: segment for segment in SEGMENTS}
if len(_BY_NAME) != len(SEGMENTS):
    raise TypeError("two segments share a name")


def get_segment(name: str) -> Segment:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownSegmentError(name) from None


def all_segments() -> list[Segment]:
    """Every segment, in definition order."""
    return list(SEGMENTS)


def context(now: datetime, settings: Settings | None = None) -> Context:
    """The evaluation context at `now` with the scoring model of `settings` (default: the
    process's settings)."""
    settings = settings or get_settings()
    return Context(
        now=now,
        half_life=timedelta(days=settings.score_half_life_days),
        qualify_at=settings.score_qualify_at,
    )


def _segment(segment: str | Segment) -> Segment:
    return segment if isinstance(segment, Segment) else get_segment(segment)


def members_query(segment: str | Segment, ctx: Context) -> Any:
    """SELECT contact_id FROM contacts WHERE <predicate>, unordered."""
    return select(col(Contact.contact_id)).where(_segment(segment).predicate.sql(ctx))


async def segment_page(
    session: AsyncSession,
    name: str | Segment,
    *,
    now: datetime,
    after: str | None,
    limit: int,
    settings: Settings | None = None,
) -> list[str]:
    """Up to `limit` member ids ordered by contact_id, strictly after `after` (keyset paging:
    pass the last id of a page to get the next; an empty page is the end)."""
    query = members_query(name, context(now, settings))
    if after is not None:
        query = query.where(col(Contact.contact_id) > after)
    query = query.order_by(col(Contact.contact_id)).limit(limit)
    return list((await session.exec(query)).all())


async def segment_count(
    session: AsyncSession,
    name: str | Segment,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> int:
    members = members_query(name, context(now, settings)).subquery()
    counted = select(func.count()).select_from(members)
    return int((await session.exec(counted)).one())


async def is_member(
    session: AsyncSession,
    name: str | Segment,
    contact_id: str,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> bool:
    """Whether one contact is in the segment at `now` (the same SQL, for one row)."""
    query = members_query(name, context(now, settings)).where(col(Contact.contact_id) == contact_id)
    return (await session.exec(query)).first() is not None
