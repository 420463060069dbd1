"""Time in the contact's world: local wall-clock times to UTC instants, across DST.

Pure functions (the zone database is the only input besides the arguments), used by the
`next_local_time` activity and by the quiet-hours check at send time.

DST rules, the ones a person expects:
- a local time that does not exist that day (clocks jump forward over it) happens when the
  clocks have jumped: 02:30 on the spring-forward night is 03:30 local;
- a local time that happens twice (clocks fall back) means its first occurrence.
Python's zoneinfo already resolves `fold=0` this way; the helpers make it explicit and tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_for(*candidates: str | None) -> ZoneInfo:
    """The first valid IANA zone among `candidates` (contact's, journey's, global default)."""
    for name in candidates:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `zone` (see the DST rules above)."""
    return datetime.combine(day, at.replace(fold=0), tzinfo=zone).astimezone(UTC)


def next_local_time(
    after: datetime, at: time, zone: ZoneInfo, weekdays: Iterable[int] | None = None
) -> datetime:
    """The first instant strictly after `after` when it is `at` local time on an allowed weekday."""
    allowed = set(weekdays) if weekdays else set(range(7))
    if not allowed <= set(range(7)):
        raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), not {sorted(allowed)}")
    start = after.astimezone(zone).date()
    for offset in range(0, 9):
        day = start + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        instant = local_instant(day, at, zone)
        if instant > after:
            return instant
    raise AssertionError("unreachable: every weekday recurs within 8 days")


def quiet_until(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet window containing `now` ends, or None if `now` is outside it.

    The window may span midnight (21:00 to 08:00) or not (12:00 to 14:00); start == end means
    no quiet hours.
    """
    if start == end:
        return None
    local = now.astimezone(zone).time().replace(tzinfo=None, fold=0)
    inside = (start <= local < end) if start < end else (local >= start or local < end)
    if not inside:
        return None
    return next_local_time(now, end, zone)
