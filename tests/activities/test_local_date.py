"""`next_local_time` also says which calendar day it is for the contact at that moment."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.timing import resolve_local_time
from workflows.contracts import LocalTimeRequest, LocalTimeResult


def nine_after(after: datetime, zone: str | None) -> LocalTimeResult:
    return resolve_local_time(LocalTimeRequest("c-1", "09:00", after), zone, "UTC")


def test_the_local_date_is_the_contacts_day_not_the_utc_one() -> None:
    noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    # Auckland (UTC+13 in November): the next 09:00 is 20:00 UTC today, already tomorrow there.
    auckland = nine_after(noon, "Pacific/Auckland")
    # Los Angeles (UTC-8): 17:00 UTC today, still today there.
    los_angeles = nine_after(noon, "America/Los_Angeles")

    assert (auckland.at, auckland.local_date) == (
        datetime(2026, 11, 23, 20, tzinfo=UTC),
        "2026-11-24",
    )
    assert (los_angeles.at, los_angeles.local_date) == (
        datetime(2026, 11, 23, 17, tzinfo=UTC),
        "2026-11-23",
    )


def test_without_a_zone_the_default_zone_decides_the_day() -> None:
    result = nine_after(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), None)

    assert (result.timezone, result.local_date) == ("UTC", "2026-11-24")
