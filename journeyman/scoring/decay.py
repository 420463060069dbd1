"""Exponential decay of lead score points: exact at any read time.

A score is stored as `points` as of `as_of`; at a later `now` it is worth
`points * 0.5 ** ((now - as_of) / half_life)`. Because decay is linear, adding an event's points
to the decayed value gives the same score as decaying every event's points on its own.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from persistence.models import as_utc


def decayed(points: float, as_of: datetime, now: datetime, half_life: timedelta) -> float:
    """`points` (as of `as_of`) worth at `now`; no decay for a `now` before `as_of`."""
    elapsed = (as_utc(now) - as_utc(as_of)).total_seconds()
    if elapsed <= 0:
        return points
    return points * math.pow(0.5, elapsed / half_life.total_seconds())


def falls_below_at(
    points: float, as_of: datetime, line: float, half_life: timedelta
) -> datetime | None:
    """When a positive score decays under `line` (> 0); None if it already is or never will."""
    if line <= 0 or points < line:
        return None
    halvings = math.log2(points / line)
    return as_utc(as_of) + half_life * halvings
