"""Local-time arithmetic on both sides of DST switches and in a 30-minute-offset zone."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from activities.localtime import next_local_time, quiet_until, zone_for

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
ADELAIDE = ZoneInfo("Australia/Adelaide")  # +09:30, +10:30 in summer
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30, no DST


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_nine_local_in_rome_before_and_after_spring_forward() -> None:
    # Rome moves from +01:00 to +02:00 on Sunday 2026-03-29.
    before = next_local_time(utc(2026, 3, 27, 12), time(9), ROME)
    assert before == utc(2026, 3, 28, 8)  # Saturday 09:00 CET
    across = next_local_time(utc(2026, 3, 28, 12), time(9), ROME)
    assert across == utc(2026, 3, 29, 7)  # Sunday 09:00 CEST: one hour earlier in UTC


def test_nine_local_in_new_york_across_fall_back() -> None:
    # New York moves from -04:00 to -05:00 on Sunday 2026-11-01.
    assert next_local_time(utc(2026, 10, 31, 14), time(9), NEW_YORK) == utc(2026, 11, 1, 14)
    assert next_local_time(utc(2026, 10, 30, 14), time(9), NEW_YORK) == utc(2026, 10, 31, 13)


def test_a_time_skipped_by_spring_forward_happens_when_clocks_jump() -> None:
    # 02:30 does not exist in Rome on 2026-03-29; it means 03:30 CEST = 01:30 UTC.
    assert next_local_time(utc(2026, 3, 28, 12), time(2, 30), ROME) == utc(2026, 3, 29, 1, 30)


def test_a_time_repeated_by_fall_back_means_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2026-11-01: first at -04:00 (05:30 UTC).
    assert next_local_time(utc(2026, 11, 1, 0), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)


def test_half_hour_offsets_with_and_without_dst() -> None:
    assert next_local_time(utc(2026, 6, 1, 0), time(9), KOLKATA) == utc(2026, 6, 1, 3, 30)
    # Adelaide: +09:30 in June (winter), +10:30 in January (summer).
    assert next_local_time(utc(2026, 6, 1, 12), time(9), ADELAIDE) == utc(2026, 6, 1, 23, 30)
    assert next_local_time(utc(2026, 1, 10, 12), time(9), ADELAIDE) == utc(2026, 1, 10, 22, 30)


def test_weekdays_pick_the_next_allowed_day() -> None:
    # 2026-11-20 is a Friday; next Monday 09:00 Rome (CET) is 2026-11-23 08:00 UTC.
    assert next_local_time(utc(2026, 11, 20, 12), time(9), ROME, [0]) == utc(2026, 11, 23, 8)
    # Already past 09:00 on a Monday: the following Monday.
    assert next_local_time(utc(2026, 11, 23, 9), time(9), ROME, [0]) == utc(2026, 11, 30, 8)
    with pytest.raises(ValueError, match="weekdays"):
        next_local_time(utc(2026, 11, 23, 9), time(9), ROME, [7])


def test_quiet_hours_spanning_midnight() -> None:
    start, end = time(21), time(8)
    # 22:30 Rome (CET) on 2026-11-22 is quiet until 08:00 the next morning.
    assert quiet_until(utc(2026, 11, 22, 21, 30), ROME, start, end) == utc(2026, 11, 23, 7)
    # 05:00 Rome is quiet until 08:00 the same morning.
    assert quiet_until(utc(2026, 11, 23, 4), ROME, start, end) == utc(2026, 11, 23, 7)
    # Noon is not quiet; 08:00 sharp is not quiet; 21:00 sharp is.
    assert quiet_until(utc(2026, 11, 23, 11), ROME, start, end) is None
    assert quiet_until(utc(2026, 11, 23, 7), ROME, start, end) is None
    assert quiet_until(utc(2026, 11, 23, 20), ROME, start, end) == utc(2026, 11, 24, 7)


def test_quiet_hours_ending_on_the_far_side_of_a_dst_switch() -> None:
    # Saturday 23:00 CET before spring forward: quiet until Sunday 08:00 CEST (06:00 UTC).
    assert quiet_until(utc(2026, 3, 28, 22), ROME, time(21), time(8)) == utc(2026, 3, 29, 6)


def test_quiet_hours_within_a_day_and_disabled() -> None:
    assert quiet_until(utc(2026, 6, 1, 7), KOLKATA, time(12), time(14)) == utc(2026, 6, 1, 8, 30)
    assert quiet_until(utc(2026, 6, 1, 7), KOLKATA, time(9), time(9)) is None


def test_zone_fallbacks() -> None:
    assert zone_for(None, "Not/AZone", "Europe/Rome") == ROME
    assert zone_for(None, None) == ZoneInfo("UTC")
