"""record_lifecycle, read_contact and start_journey against the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities import JourneyActivities
from activities.lifecycle import LifecycleRecorder
from persistence import Database, Enrollment, EnrollmentStep
from workflows.contracts import (
    ContactRequest,
    ContactSnapshot,
    LifecycleAck,
    LifecycleRecord,
    StartJourneyRequest,
)

from .conftest import AddContact, RecordingStarter

run = ActivityEnvironment().run
ENTERED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def record(run_id: str, kind: str, **fields: Any) -> LifecycleRecord:
    defaults: dict[str, Any] = {
        "workflow_id": "journey:abandoned_cart:c-42:cart-7",
        "run_id": run_id,
        "journey": "abandoned_cart",
        "version": 1,
        "contact_id": "c-42",
        "key": "cart-7",
        "kind": kind,
        "at": ENTERED_AT,
        "trigger_event_id": "evt-1",
    }
    return LifecycleRecord(**{**defaults, **fields})


async def enrollment(database: Database, run_id: str) -> Enrollment:
    async with database.session() as session:
        row = await session.get(Enrollment, run_id)
    assert row is not None
    return row


async def steps(database: Database, run_id: str) -> list[EnrollmentStep]:
    async with database.session() as session:
        found = await session.exec(
            select(EnrollmentStep)
            .where(col(EnrollmentStep.run_id) == run_id)
            .order_by(col(EnrollmentStep.at))
        )
        return list(found.all())


def aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive UTC datetimes; PostgreSQL aware ones."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


async def test_lifecycle_is_recorded_once_however_often_it_repeats(
    activities: JourneyActivities, database: Database
) -> None:
    run_id = str(uuid.uuid4())
    later = ENTERED_AT + timedelta(hours=1)
    lifecycle = [
        record(run_id, "entered"),
        record(run_id, "step", at=later, step="grace_period", step_kind="wait", outcome="waited"),
        record(
            run_id,
            "ended",
            at=later,
            status="converted",
            outcome="event:order_placed",
        ),
    ]

    first = [await run(LifecycleRecorder(database).record_lifecycle, fact) for fact in lifecycle]
    # A local activity may run again after a worker restart, in any order of repeats.
    again = [
        await run(LifecycleRecorder(database).record_lifecycle, fact)
        for fact in reversed(lifecycle)
    ]

    assert first == [LifecycleAck(recorded=True)] * 3
    assert again == [LifecycleAck(recorded=False)] * 3
    row = await enrollment(database, run_id)
    assert (row.journey, row.version, row.contact_id, row.key) == (
        "abandoned_cart",
        1,
        "c-42",
        "cart-7",
    )
    assert (row.status, row.ended_by, row.current_step) == (
        "converted",
        "event:order_placed",
        "grace_period",
    )
    assert aware(row.entered_at) == ENTERED_AT
    assert aware(row.ended_at) == later
    assert row.trigger_event_id == "evt-1"
    [step] = await steps(database, run_id)
    assert (step.step, step.kind, step.outcome) == ("grace_period", "wait", "waited")


async def test_current_step_follows_the_steps(
    activities: JourneyActivities, database: Database
) -> None:
    run_id = str(uuid.uuid4())
    await run(LifecycleRecorder(database).record_lifecycle, record(run_id, "entered"))
    for minute, name in enumerate(["grace_period", "first_reminder", "order_window"]):
        fact = record(
            run_id,
            "step",
            at=ENTERED_AT + timedelta(minutes=minute),
            step=name,
            step_kind="send",
            outcome="sent",
        )
        await run(LifecycleRecorder(database).record_lifecycle, fact)
    # A late repeat of an earlier step does not move the enrollment back.
    await run(
        LifecycleRecorder(database).record_lifecycle,
        record(run_id, "step", step="grace_period", step_kind="wait", outcome="waited"),
    )

    assert (await enrollment(database, run_id)).current_step == "order_window"
    assert [s.step for s in await steps(database, run_id)] == [
        "grace_period",
        "first_reminder",
        "order_window",
    ]


async def test_read_contact_returns_a_snapshot(
    activities: JourneyActivities, add_contact: AddContact
) -> None:
    contact_id = await add_contact(
        timezone="Europe/Paris",
        locale="fr-FR",
        attributes={"interests": ["analytics"]},
        sms_consent=False,
    )

    snapshot = await run(activities.read_contact, ContactRequest(contact_id=contact_id))

    # No address in it (it goes into the workflow history): only that there is one.
    assert snapshot == ContactSnapshot(
        contact_id=contact_id,
        exists=True,
        has_email=True,
        timezone="Europe/Paris",
        locale="fr-FR",
        attributes={"interests": ["analytics"]},
        consent={"email": True, "sms": False, "push": True},
    )


async def test_read_contact_for_an_unknown_contact(activities: JourneyActivities) -> None:
    snapshot = await run(activities.read_contact, ContactRequest(contact_id="c-nobody"))

    assert snapshot == ContactSnapshot(contact_id="c-nobody", exists=False)


async def test_start_journey_goes_through_the_enrollment_service(
    activities: JourneyActivities, starter: RecordingStarter
) -> None:
    request = StartJourneyRequest(
        journey="post_purchase", contact_id="c-42", key="order-1", started_by="journey:x"
    )

    result = await run(activities.start_journey, request)

    assert starter.requests == [request]
    assert (result.journey, result.action) == ("post_purchase", "started")
