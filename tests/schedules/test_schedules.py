"""Schedules from journey declarations: created, kept, updated, deleted, and what they start."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    ScheduleRange,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from journeyman.schedules import NOTE, ScheduleOutcome, ensure_schedules, schedule_id_for
from journeyman.settings import Settings
from tests.schedules.stub_bulk import StubBulkEnrollment
from workflows.birthday import Birthday
from workflows.contracts import BULK_ENROLLMENT, BulkEnrollmentInput, JourneySchedule
from workflows.reengagement import Reengagement
from workflows.runtime import Journey

ROME = ZoneInfo("Europe/Rome")


def declaring(schedule: JourneySchedule | None, name: str | None = None) -> type[Journey]:
    """A journey class as `ensure_schedules` reads it: a name and a schedule."""
    journey_name = name or f"sched_{uuid.uuid4().hex[:8]}"
    return type("Declared", (Journey,), {"name": journey_name, "schedule": schedule})


async def describe(client: Client, journey: type[Journey]) -> ScheduleDescription:
    return await client.get_schedule_handle(schedule_id_for(journey.name)).describe()


async def action_input(client: Client, description: ScheduleDescription) -> BulkEnrollmentInput:
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    [request] = await client.data_converter.decode(action.args, [BulkEnrollmentInput])
    assert isinstance(request, BulkEnrollmentInput)
    return request


async def listed(client: Client, schedule_id: str) -> None:
    """Wait until the (eventually consistent) list shows the schedule."""
    for _ in range(100):
        if schedule_id in [s.id async for s in await client.list_schedules()]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{schedule_id} never listed")


async def exists(client: Client, journey: type[Journey]) -> bool:
    try:
        await describe(client, journey)
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
        return False
    return True


def actions(outcomes: list[ScheduleOutcome]) -> dict[str, str]:
    return {o.journey: o.action for o in outcomes}


async def test_a_declared_schedule_is_created_as_declared(
    client: Client, settings: Settings
) -> None:
    journey = declaring(
        JourneySchedule(
            segment="inactive_30d",
            hour=[10],
            minute=[30],
            day_of_week=[1, 3],
            timezone="Europe/Rome",
            overlap="buffer_one",
        )
    )

    outcomes = await ensure_schedules(client, settings, [journey])

    assert ScheduleOutcome(schedule_id_for(journey.name), journey.name, "created") in outcomes
    description = await describe(client, journey)
    [calendar] = description.schedule.spec.calendars
    assert calendar.hour == (ScheduleRange(10),)
    assert calendar.minute == (ScheduleRange(30),)
    assert calendar.second == (ScheduleRange(0),)
    assert calendar.day_of_week == (ScheduleRange(1), ScheduleRange(3))
    assert calendar.day_of_month == (ScheduleRange(1, 31),)  # empty means every day
    assert calendar.month == (ScheduleRange(1, 12),)
    assert description.schedule.spec.time_zone_name == "Europe/Rome"
    assert description.schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ONE
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        BULK_ENROLLMENT,
        f"bulk:{journey.name}:scheduled",
        settings.task_queue,
    )
    assert await action_input(client, description) == BulkEnrollmentInput(
        journey=journey.name,
        segment="inactive_30d",
        starts_per_second=settings.bulk_starts_per_second,
        requested_by=f"journey:{journey.name}",
    )
    assert await description.memo() == {"managed_by": "journeyman", "journey": journey.name}
    assert description.schedule.state.note == NOTE
    # Every next run is a Monday or Wednesday (Temporal: 0 is Sunday), 10:30 in Rome.
    for at in description.info.next_action_times:
        local = at.astimezone(ROME)
        assert (local.isoweekday(), local.time()) in {(1, time(10, 30)), (3, time(10, 30))}


async def test_runs_stay_at_nine_in_rome_across_daylight_saving(
    client: Client, settings: Settings
) -> None:
    # Monthly on the 1st: the next ten runs span ten months, so both CET and CEST.
    journey = declaring(
        JourneySchedule(segment="s", hour=[9], day_of_month=[1], timezone="Europe/Rome")
    )
    await ensure_schedules(client, settings, [journey])

    runs = (await describe(client, journey)).info.next_action_times

    assert len(runs) == 10
    for at in runs:
        local = at.astimezone(ROME)
        assert (local.day, local.time()) == (1, time(9))
        expected = datetime.combine(local.date(), time(9), tzinfo=ROME).astimezone(UTC)
        assert at == expected
    assert {at.astimezone(UTC).time() for at in runs} == {time(7), time(8)}  # summer, winter


async def test_an_unchanged_declaration_is_left_alone(client: Client, settings: Settings) -> None:
    journey = declaring(JourneySchedule(segment="s", hour=[6]))
    await ensure_schedules(client, settings, [journey])

    again = await ensure_schedules(client, settings, [journey])

    assert actions(again)[journey.name] == "unchanged"
    assert (await describe(client, journey)).info.last_updated_at is None  # never updated


async def test_a_changed_declaration_updates_the_schedule(
    client: Client, settings: Settings
) -> None:
    first = JourneySchedule(segment="s", hour=[6])
    journey = declaring(first)
    await ensure_schedules(client, settings, [journey])
    changed = dataclasses.replace(
        first, hour=[7, 19], overlap="allow_all", starts_per_second=5, timezone="Asia/Tokyo"
    )

    outcomes = await ensure_schedules(client, settings, [declaring(changed, journey.name)])

    assert actions(outcomes)[journey.name] == "updated"
    description = await describe(client, journey)
    [calendar] = description.schedule.spec.calendars
    assert calendar.hour == (ScheduleRange(7), ScheduleRange(19))
    assert description.schedule.spec.time_zone_name == "Asia/Tokyo"
    assert description.schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
    assert (await action_input(client, description)).starts_per_second == 5
    # And now it matches: the next start-up leaves it alone.
    later = await ensure_schedules(client, settings, [declaring(changed, journey.name)])
    assert actions(later)[journey.name] == "unchanged"


async def test_a_new_task_queue_updates_the_action(client: Client, settings: Settings) -> None:
    journey = declaring(JourneySchedule(segment="s"))
    await ensure_schedules(client, settings, [journey])
    moved = settings.model_copy(update={"task_queue": f"{settings.task_queue}-new"})

    outcomes = await ensure_schedules(client, moved, [journey])

    assert actions(outcomes)[journey.name] == "updated"
    action = (await describe(client, journey)).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.task_queue == moved.task_queue


async def test_an_operators_pause_survives_an_update(client: Client, settings: Settings) -> None:
    journey = declaring(JourneySchedule(segment="s", hour=[6]))
    await ensure_schedules(client, settings, [journey])
    await client.get_schedule_handle(schedule_id_for(journey.name)).pause(note="holiday freeze")

    changed = declaring(JourneySchedule(segment="s", hour=[8]), journey.name)
    outcomes = await ensure_schedules(client, settings, [changed])

    assert actions(outcomes)[journey.name] == "updated"
    state = (await describe(client, journey)).schedule.state
    assert (state.paused, state.note) == (True, "holiday freeze")


async def test_a_schedule_no_longer_declared_is_deleted(client: Client, settings: Settings) -> None:
    kept = declaring(JourneySchedule(segment="s"))
    dropped = declaring(JourneySchedule(segment="s"))
    await ensure_schedules(client, settings, [kept, dropped])
    await listed(client, schedule_id_for(dropped.name))

    outcomes = await ensure_schedules(client, settings, [kept, declaring(None, dropped.name)])

    assert actions(outcomes) == {kept.name: "unchanged", dropped.name: "deleted"}
    assert await exists(client, kept)
    assert not await exists(client, dropped)


async def test_schedules_not_ours_are_never_deleted(client: Client, settings: Settings) -> None:
    journey = declaring(JourneySchedule(segment="s"))
    await ensure_schedules(client, settings, [journey])
    other = f"reports-{uuid.uuid4().hex[:6]}"
    description = await describe(client, journey)
    await client.create_schedule(other, description.schedule)
    await listed(client, other)

    await ensure_schedules(client, settings, [])

    assert not await exists(client, journey)
    assert (await client.get_schedule_handle(other).describe()).id == other
    await client.get_schedule_handle(other).delete()


async def test_two_workers_starting_together_both_succeed(
    client: Client, settings: Settings
) -> None:
    journey = declaring(JourneySchedule(segment="s", hour=[3]))

    first, second = await asyncio.gather(
        ensure_schedules(client, settings, [journey]),
        ensure_schedules(client, settings, [journey]),
    )

    assert sorted([actions(first)[journey.name], actions(second)[journey.name]]) == [
        "created",
        "unchanged",
    ]
    assert (await describe(client, journey)).info.last_updated_at is None


async def test_nothing_happens_when_schedules_are_disabled(
    client: Client, settings: Settings
) -> None:
    journey = declaring(JourneySchedule(segment="s"))
    off = settings.model_copy(update={"schedules_enabled": False})

    assert await ensure_schedules(client, off, [journey]) == []
    assert not await exists(client, journey)


async def test_a_triggered_schedule_starts_a_bulk_enrollment_of_the_segment(
    client: Client, settings: Settings
) -> None:
    journey = declaring(JourneySchedule(segment="birthday_candidates", starts_per_second=3))
    await ensure_schedules(client, settings, [journey])
    handle = client.get_schedule_handle(schedule_id_for(journey.name))

    async with Worker(client, task_queue=settings.task_queue, workflows=[StubBulkEnrollment]):
        await handle.trigger()
        for _ in range(100):
            recent = (await handle.describe()).info.recent_actions
            if recent:
                break
            await asyncio.sleep(0.1)
        [run] = recent
        assert isinstance(run.action, ScheduleActionExecutionStartWorkflow)
        workflow_id = run.action.workflow_id
        received = await client.get_workflow_handle(
            workflow_id, result_type=BulkEnrollmentInput
        ).result()

    assert workflow_id.startswith(f"bulk:{journey.name}:scheduled-")
    assert received == BulkEnrollmentInput(
        journey=journey.name,
        segment="birthday_candidates",
        starts_per_second=3,
        requested_by=f"journey:{journey.name}",
    )


async def test_the_catalogs_scheduled_journeys_get_their_schedules(
    client: Client, settings: Settings
) -> None:
    outcomes = await ensure_schedules(client, settings)

    created = {o.journey for o in outcomes if o.action in ("created", "unchanged")}
    assert {"reengagement", "birthday"} <= created
    for cls, segment, hour in (
        (Reengagement, "inactive_30d", 10),
        (Birthday, "birthday_candidates", 12),
    ):
        description = await describe(client, cls)
        [calendar] = description.schedule.spec.calendars
        assert calendar.hour == (ScheduleRange(hour),)
        assert description.schedule.spec.time_zone_name == "UTC"
        assert (await action_input(client, description)).segment == segment
        runs = description.info.next_action_times
        assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(runs))
    for other in outcomes:
        assert other.journey in {"reengagement", "birthday"} or other.action == "deleted"


pytestmark = pytest.mark.integration
