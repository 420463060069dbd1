"""Birthday: a birthday email at 09:00 in the contact's own timezone, on their birthday.

A daily Temporal Schedule (12:00 UTC) enrolls the `birthday_candidates` segment: contacts whose
`attributes.birthday` ("MM-DD" or "YYYY-MM-DD") is yesterday, today or tomorrow in UTC. Which
of those days is the birthday *where the contact lives* is decided here: the enrollment finds
the next 09:00 in the contact's zone and the local date of that moment. If that date is the
birthday, it waits until then and sends; otherwise it ends at once, and a run on another day
catches it.

Why exactly one run sends: 09:00 local on a birthday D falls between D-1 19:00 UTC (UTC+14)
and D 21:00 UTC (UTC-12); the runs at 12:00 UTC on D-1 and D, both of which see the contact
as a candidate, bracket it, and only the last run before that moment has it as its "next
09:00". A 29 February birthday is celebrated on 28 February in other years.

Once a year, whatever happens: after sending, the year is remembered on the contact
(`attributes.birthday_email_year`), and an enrollment finding this year there ends without
sending (a schedule triggered by hand, a run after a restart...). Re-entry is `after_exit`,
so next year's runs enroll the contact again.
"""

from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ERR_JOURNEY_DEFINITION,
        NEXT_LOCAL_TIME,
        JourneySchedule,
        LocalTimeRequest,
        LocalTimeResult,
    )
    from workflows.runtime import BOOKKEEPING_TIMEOUT, Journey, journey

SEND_AT = "09:00"
# Where the year of the last birthday email is kept (an integer attribute).
SENT_YEAR = "birthday_email_year"
GIFT = {"code": "HAPPYBDAY20", "percent": 20, "valid_days": 7}
LOCAL_TIME_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[ERR_JOURNEY_DEFINITION],
)


@journey
class Birthday(Journey):
    name = "birthday"
    version = 1
    description = (
        "Daily: a birthday email with a gift at 09:00 in the contact's own timezone, "
        "on their birthday, once a year."
    )
    exits = ("unsubscribed",)
    reentry = "after_exit"
    schedule = JourneySchedule(segment="birthday_candidates", hour=[12], minute=[0])

    async def steps(self) -> None:
        contact = await self.read_contact("read_birthday")
        birthday = month_day(contact.attributes.get("birthday"))
        if birthday is None:
            return  # no (readable) birthday any more: nothing to celebrate
        nine = await self._next_send_time("find_local_day")
        local_day = date.fromisoformat(nine.local_date or "")
        if not is_birthday(birthday, local_day):
            return  # not yet (or no longer) their birthday where they live
        if contact.attributes.get(SENT_YEAR) == local_day.year:
            return  # this year's email went already
        # The instant checked above, not a fresh "next 09:00": that could be tomorrow's.
        await self.wait("wait_until_nine", max(nine.at - workflow.now(), timedelta(0)))
        await self.send("greeting", template="birthday/greeting", context={"gift": dict(GIFT)})
        await self.update_contact(
            "remember_year",
            attributes={SENT_YEAR: local_day.year},
            reason=f"birthday email sent for {local_day.year}",
        )

    async def _next_send_time(self, step: str) -> LocalTimeResult:
        """The next 09:00 in the contact's zone and its local date (what `wait_until_local`
        resolves, kept here because the day decides whether to wait at all)."""
        await self._begin(step, f"finding the next {SEND_AT} local time")
        # Decoded by hand: inside the sandbox, `workflows/__init__.py` imports the contracts
        # without passing them through, so their `datetime` is the sandbox's proxy class and
        # the converter cannot rebuild `LocalTimeResult.at` from the type hint. Once that
        # import is passed through, `result_type=LocalTimeResult` works (same history).
        raw: dict[str, Any] = await workflow.execute_local_activity(
            NEXT_LOCAL_TIME,
            LocalTimeRequest(
                contact_id=self.contact_id,
                time=SEND_AT,
                after=workflow.now(),
                default_timezone=self.timezone,
            ),
            result_type=dict,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=LOCAL_TIME_RETRY,
            summary=f"{step}: next {SEND_AT} local",
        )
        resolved = LocalTimeResult(
            at=datetime.fromisoformat(raw["at"]),
            timezone=raw["timezone"],
            local_date=raw.get("local_date"),
        )
        await self._complete(
            step, "local_time", f"next {SEND_AT} is on {resolved.local_date} {resolved.timezone}"
        )
        return resolved


def month_day(value: object) -> tuple[int, int] | None:
    """(month, day) of a birthday written "MM-DD" or "YYYY-MM-DD"; None if unreadable."""
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    month, day = int(parts[0]), int(parts[1])
    try:
        date(2000, month, day)  # a leap year: 02-29 is a real birthday
    except ValueError:
        return None
    return month, day


def is_birthday(birthday: tuple[int, int], day: date) -> bool:
    """Whether `day` is the birthday; 29 February counts on 28 February in other years."""
    if birthday == (2, 29) and not _is_leap(day.year):
        return (day.month, day.day) == (2, 28)
    return (day.month, day.day) == birthday


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
