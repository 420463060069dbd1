"""Segments: their definitions, and a count with a page of members."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_PAGE = 100
MAX_PAGE = 1000


class SegmentPublic(BaseModel):
    name: str = Field(examples=["inactive_30d"])
    description: str
    definition: str = Field(
        description="The predicate, readable.",
        examples=["consents to email and no event in the last 30 days"],
    )


class SegmentMember(BaseModel):
    contact_id: str
    email: str | None


class SegmentMembersPublic(BaseModel):
    name: str
    count: int = Field(description="Members now (the whole segment, not this page).")
    members: list[SegmentMember] | None = Field(
        description="A page of members ordered by contact_id; null with `count_only=true`."
    )
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
