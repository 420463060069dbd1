"""Segments: named predicates over contacts, compiled to SQL (see `predicates`)."""

from journeyman.segments.query import (
    all_segments,
    get_segment,
    is_member,
    segment_count,
    segment_page,
)
from journeyman.segments.segment import Segment, UnknownSegmentError

__all__ = [
    "Segment",
    "UnknownSegmentError",
    "all_segments",
    "get_segment",
    "is_member",
    "segment_count",
    "segment_page",
]
