"""The `next_local_time` activity: when is HH:MM next in this contact's own timezone?

A (local) activity rather than workflow code: it reads the contact's current timezone, and the
zone database may change between deploys, so the answer must be recorded in history, not
recomputed on replay.
"""

from __future__ import annotations

from datetime import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.localtime import next_local_time, zone_for
from journeyman.settings import Settings
from persistence import Contact, Database
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    NEXT_LOCAL_TIME,
    LocalTimeRequest,
    LocalTimeResult,
)


def resolve_local_time(
    request: LocalTimeRequest, contact_timezone: str | None, default: str
) -> LocalTimeResult:
    """The pure part, shared with the journey tests' stand-in."""
    try:
        at = time.fromisoformat(request.time)
        zone = zone_for(contact_timezone, request.default_timezone, default)
        instant = next_local_time(request.after, at, zone, request.weekdays)
    except ValueError as err:
        raise ApplicationError(
            f"wait_until_local: {err}", type=ERR_JOURNEY_DEFINITION, non_retryable=True
        ) from err
    return LocalTimeResult(
        at=instant, timezone=zone.key, local_date=instant.astimezone(zone).date().isoformat()
    )


class TimingActivities:
    def __init__(self, *, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    @activity.defn(name=NEXT_LOCAL_TIME)
    async def next_local_time(self, request: LocalTimeRequest) -> LocalTimeResult:
        async with self.database.session() as session:
            contact = await session.get(Contact, request.contact_id)
        timezone = contact.timezone if contact else None
        return resolve_local_time(request, timezone, self.settings.default_timezone)
