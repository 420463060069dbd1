"""Temporal Schedules from the journeys' `schedule` declarations, kept in step at start-up.

A journey that declares `schedule = JourneySchedule(segment=..., hour=[10], ...)` gets one
Temporal Schedule, id `journey:<name>`, whose action starts a bulk enrollment of the segment
into the journey (workflow `BULK_ENROLLMENT`, id `bulk:<name>:scheduled` plus the time Temporal
appends). Every worker calls `ensure_schedules` at start-up:

- a declared schedule that does not exist is created;
- one whose calendar, timezone, overlap policy or action differs from the declaration is
  updated (a pause set by an operator in the UI is kept);
- one that matches is left alone: no update call, so restarts do not touch it;
- a `journey:` schedule whose journey no longer declares one (or no longer exists) is deleted.

Workers starting together race safely: a create that finds the schedule already there (another
worker won) takes the update path, which compares first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from journeyman.settings import Settings
from workflows import catalog
from workflows.contracts import BULK_ENROLLMENT, BulkEnrollmentInput, JourneySchedule
from workflows.runtime import Journey

log = logging.getLogger("journeyman.schedules")

PREFIX = "journey:"
MANAGED_BY = "journeyman"
NOTE = "Managed by Journeyman from the journey's `schedule` declaration; edits are overwritten."
# A run missed while Temporal was down still happens if it comes back within this long;
# later than that, the next run is the one that counts (the segment is evaluated afresh).
CATCHUP_WINDOW = timedelta(days=1)
OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
# Every value of a calendar field, for a field the declaration leaves empty ("every").
EVERY = {
    "minute": ScheduleRange(0, 59),
    "hour": ScheduleRange(0, 23),
    "day_of_month": ScheduleRange(1, 31),
    "month": ScheduleRange(1, 12),
    "day_of_week": ScheduleRange(0, 6),
}

Action = Literal["created", "updated", "unchanged", "deleted"]


@dataclass(frozen=True)
class ScheduleOutcome:
    schedule_id: str
    journey: str
    action: Action


def schedule_id_for(journey: str) -> str:
    return f"{PREFIX}{journey}"


def bulk_workflow_id_for(journey: str) -> str:
    """The scheduled bulk enrollment's id; Temporal appends each run's scheduled time."""
    return f"bulk:{journey}:scheduled"


def build_schedule(cls: type[Journey], settings: Settings) -> Schedule:
    """The Temporal Schedule that `cls.schedule` declares."""
    declared = cls.schedule
    if declared is None:
        raise ValueError(f"journey {cls.name} declares no schedule")
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BULK_ENROLLMENT,
            bulk_input(cls.name, declared, settings),
            id=bulk_workflow_id_for(cls.name),
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(calendars=[calendar(declared)], time_zone_name=declared.timezone),
        policy=SchedulePolicy(overlap=OVERLAP[declared.overlap], catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=NOTE),
    )


def bulk_input(name: str, declared: JourneySchedule, settings: Settings) -> BulkEnrollmentInput:
    return BulkEnrollmentInput(
        journey=name,
        segment=declared.segment,
        starts_per_second=declared.starts_per_second or settings.bulk_starts_per_second,
        requested_by=schedule_id_for(name),
    )


def calendar(declared: JourneySchedule) -> ScheduleCalendarSpec:
    """The declaration's calendar fields as Temporal ranges (day_of_week: 0 is Sunday)."""

    def ranges(field: str, values: list[int]) -> tuple[ScheduleRange, ...]:
        return tuple(ScheduleRange(v) for v in sorted(set(values))) or (EVERY[field],)

    return ScheduleCalendarSpec(
        second=(ScheduleRange(0),),
        minute=ranges("minute", declared.minute),
        hour=ranges("hour", declared.hour),
        day_of_month=ranges("day_of_month", declared.day_of_month),
        month=ranges("month", declared.month),
        day_of_week=ranges("day_of_week", declared.day_of_week),
    )


async def ensure_schedules(
    client: Client,
    settings: Settings,
    journeys: Sequence[type[Journey]] | None = None,
) -> list[ScheduleOutcome]:
    """Create, update or delete the `journey:` schedules to match the declarations of
    `journeys` (default: the newest version of every journey). Nothing happens when
    `JOURNEYMAN_SCHEDULES_ENABLED` is false."""
    if not settings.schedules_enabled:
        log.info("Schedules are disabled (JOURNEYMAN_SCHEDULES_ENABLED=false)")
        return []
    declaring = [
        cls for cls in (catalog.latest() if journeys is None else journeys) if cls.schedule
    ]
    outcomes = [await _ensure(client, cls, settings) for cls in declaring]
    wanted = {schedule_id_for(cls.name) for cls in declaring}
    for stale in await _managed_ids(client):
        if stale not in wanted:
            outcomes.append(await _delete(client, stale))
    for outcome in outcomes:
        log.info("Schedule %s: %s", outcome.schedule_id, outcome.action)
    return outcomes


async def _ensure(client: Client, cls: type[Journey], settings: Settings) -> ScheduleOutcome:
    schedule_id = schedule_id_for(cls.name)
    desired = build_schedule(cls, settings)
    handle = client.get_schedule_handle(schedule_id)
    try:
        current = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        return await _update_if_changed(client, cls.name, current, desired)
    try:
        await client.create_schedule(
            schedule_id,
            desired,
            memo={"managed_by": MANAGED_BY, "journey": cls.name},
        )
    except ScheduleAlreadyRunningError:
        # Another worker created it between our describe and our create.
        return await _update_if_changed(client, cls.name, await handle.describe(), desired)
    return ScheduleOutcome(schedule_id, cls.name, "created")


async def _update_if_changed(
    client: Client, journey: str, current: ScheduleDescription, desired: Schedule
) -> ScheduleOutcome:
    if await _same(client, current.schedule, desired):
        return ScheduleOutcome(current.id, journey, "unchanged")
    changed = False

    async def updater(update: ScheduleUpdateInput) -> ScheduleUpdate | None:
        nonlocal changed
        latest = update.description.schedule
        # Called again on a conflict: another worker may have updated it meanwhile.
        if await _same(client, latest, desired):
            changed = False
            return None
        changed = True
        # Keep an operator's pause (and its note) across deploys.
        state = ScheduleState(note=latest.state.note, paused=True) if latest.state.paused else None
        return ScheduleUpdate(
            schedule=Schedule(
                action=desired.action,
                spec=desired.spec,
                policy=desired.policy,
                state=state or desired.state,
            )
        )

    await client.get_schedule_handle(current.id).update(updater)
    return ScheduleOutcome(current.id, journey, "updated" if changed else "unchanged")


async def _same(client: Client, current: Schedule, desired: Schedule) -> bool:
    """Whether the described schedule already is what the declaration wants."""
    return await _comparable(client, current) == await _comparable(client, desired)


async def _comparable(client: Client, schedule: Schedule) -> tuple[Any, ...]:
    action = schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        return ("not a workflow start",)
    args: list[Any] = list(action.args)
    if args and all(isinstance(arg, Payload) for arg in args):
        # A described action holds its arguments encoded.
        args = await client.data_converter.decode(args, [BulkEnrollmentInput])
    spec = schedule.spec
    return (
        action.workflow,
        action.id,
        action.task_queue,
        args,
        [_calendar_key(c) for c in spec.calendars],
        list(spec.intervals),
        list(spec.cron_expressions),
        spec.time_zone_name or "UTC",
        schedule.policy.overlap,
        schedule.policy.catchup_window,
    )


def _calendar_key(spec: ScheduleCalendarSpec) -> tuple[Any, ...]:
    return tuple(
        tuple(getattr(spec, name))
        for name in ("second", "minute", "hour", "day_of_month", "month", "year", "day_of_week")
    )


async def _managed_ids(client: Client) -> list[str]:
    """Ids of the `journey:` schedules (the prefix is Journeyman's).

    Listing is eventually consistent: a schedule created a moment ago may be missing, which
    only delays its deletion to the next start-up.
    """
    return [
        entry.id async for entry in await client.list_schedules() if entry.id.startswith(PREFIX)
    ]


async def _delete(client: Client, schedule_id: str) -> ScheduleOutcome:
    journey = schedule_id.removeprefix(PREFIX)
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise  # NOT_FOUND: another worker deleted it first
    return ScheduleOutcome(schedule_id, journey, "deleted")
