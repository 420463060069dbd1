"""Segments: `GET /v1/segments` and `GET /v1/segments/{name}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlmodel import col, select

from api.deps import SessionDep, SettingsDep
from api.schemas.common import ContactId, ErrorOut
from api.schemas.segments import (
    DEFAULT_PAGE,
    MAX_PAGE,
    SegmentMember,
    SegmentMembersPublic,
    SegmentPublic,
)
from journeyman.segments import (
    Segment,
    UnknownSegmentError,
    all_segments,
    get_segment,
    segment_count,
    segment_page,
)
from persistence import Contact
from persistence.models import utcnow

router = APIRouter(prefix="/segments", tags=["segments"])


def _public(segment: Segment) -> SegmentPublic:
    return SegmentPublic(
        name=segment.name, description=segment.description, definition=segment.definition
    )


@router.get("", response_model=list[SegmentPublic])
async def list_segments() -> list[SegmentPublic]:
    """Every segment defined in code, with its definition in words."""
    return [_public(segment) for segment in all_segments()]


@router.get(
    "/{name}",
    response_model=SegmentMembersPublic,
    responses={404: {"model": ErrorOut}},
)
async def read_segment(
    name: Annotated[
        str, Path(max_length=200, description="The segment's name.", examples=["qualified_leads"])
    ],
    session: SessionDep,
    settings: SettingsDep,
    count_only: Annotated[bool, Query(description="Only count the members.")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Members per page.")] = (
        DEFAULT_PAGE
    ),
    after: Annotated[
        ContactId | None, Query(description="The `next_after` of the previous page.")
    ] = None,
) -> SegmentMembersPublic:
    """How many contacts are in the segment now, and a page of them (keyset on contact_id)."""
    try:
        segment = get_segment(name)
    except UnknownSegmentError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
    now = utcnow()
    count = await segment_count(session, segment, now=now, settings=settings)
    if count_only:
        return SegmentMembersPublic(name=name, count=count, members=None, next_after=None)
    # One more than asked tells whether another page follows.
    ids = await segment_page(
        session, segment, now=now, after=after, limit=limit + 1, settings=settings
    )
    page, more = ids[:limit], len(ids) > limit
    emails = dict(
        (
            await session.exec(
                select(Contact.contact_id, Contact.email).where(col(Contact.contact_id).in_(page))
            )
        ).all()
    )
    return SegmentMembersPublic(
        name=name,
        count=count,
        members=[SegmentMember(contact_id=i, email=emails.get(i)) for i in page],
        next_after=page[-1] if more else None,
    )
