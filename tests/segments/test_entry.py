"""Segment-entry triggers end to end on the Temporal dev server: routing an event (and
writing a contact) enrolls contacts that entered a journey's `entry_segment`, once per entry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlmodel import col, delete, select
from temporalio.testing import WorkflowEnvironment

from api.schemas.contacts import ContactUpsert
from api.services.contacts import upsert_contact
from journeyman.enrollments import EnrollmentService
from journeyman.segments.entry import (
    SEGMENT_ENTERED,
    check_entries,
    entry_checker,
    entry_event_id,
)
from journeyman.settings import Settings
from persistence import Contact, Database, Enrollment, LeadScore, SegmentMembership
from persistence.models import utcnow
from tests.api.helpers import SentMessages, eventually
from tests.support import capturing_worker
from workflows import catalog
from workflows.contracts import Event, StartJourneyRequest, StartJourneyResult

from .conftest import Generated, unseed
from .journeys import EntersOnBirthday, EntersOnQualification

pytestmark = pytest.mark.integration
PREFIX = "segentry-"


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue)


@pytest.fixture
async def sent(
    dev_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[SentMessages]:
    """The test journeys join the catalog for this test (so routing and starting know them),
    and a worker runs every journey with sends captured."""
    for cls in (EntersOnQualification, EntersOnBirthday):
        monkeypatch.setitem(catalog._load(), cls.name, {cls.version: cls})
    async with capturing_worker(dev_env.client, database, settings) as captured:
        yield captured
    await unseed(Generated(database, PREFIX))


@pytest.fixture
def service(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> EnrollmentService:
    return EnrollmentService(client=dev_env.client, database=database, settings=settings)


async def _contact(database: Database, *, points: float | None = None) -> str:
    contact_id = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    await database.insert_once(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
    if points is not None:
        await _score(database, contact_id, points)
    return contact_id


async def _score(database: Database, contact_id: str, points: float | None) -> None:
    async with database.session() as session:
        await session.exec(delete(LeadScore).where(col(LeadScore.contact_id) == contact_id))
        if points is not None:
            session.add(LeadScore(contact_id=contact_id, points=points, as_of=utcnow()))
        await session.commit()


def _event(contact_id: str) -> Event:
    return Event(id=uuid.uuid4().hex, contact_id=contact_id, name="page_viewed")


async def _memberships(database: Database, contact_id: str) -> list[str]:
    query = select(SegmentMembership.segment).where(col(SegmentMembership.contact_id) == contact_id)
    async with database.session() as session:
        return sorted((await session.exec(query)).all())


async def _enrollments(database: Database, contact_id: str) -> list[Enrollment]:
    query = select(Enrollment).where(
        col(Enrollment.contact_id) == contact_id,
        col(Enrollment.journey) == EntersOnQualification.name,
    )
    async with database.session() as session:
        return list((await session.exec(query)).all())


async def test_routing_an_event_enrolls_a_contact_that_entered_the_segment(
    sent: SentMessages, service: EnrollmentService, database: Database
) -> None:
    contact_id = await _contact(database, points=80)
    outsider = await _contact(database, points=10)

    await service.route(_event(contact_id))
    await service.route(_event(outsider))
    (greeting,) = await sent.settled(contact_id, 1)
    assert greeting.template == "welcome_lead"
    assert greeting.trigger is not None
    assert greeting.trigger.name == SEGMENT_ENTERED
    assert greeting.trigger.properties == {"segment": "qualified_leads"}
    assert greeting.trigger.id.startswith(f"segment:qualified_leads:{contact_id}:")
    assert await _memberships(database, contact_id) == ["qualified_leads"]
    assert await _memberships(database, outsider) == []
    assert sent.for_contact(outsider) == []

    # Still a member: nothing new.
    await service.route(_event(contact_id))
    await asyncio.sleep(0.5)
    assert len(sent.for_contact(contact_id)) == 1

    # Leaving the segment forgets the membership; entering again enrolls again (the first
    # enrollment completed, and the journey re-enters after an exit).
    await eventually(
        lambda: _enrollments(database, contact_id),
        lambda rows: [row.status for row in rows] == ["completed"],
    )
    await _score(database, contact_id, 5)
    await service.route(_event(contact_id))
    assert await _memberships(database, contact_id) == []
    await _score(database, contact_id, 90)
    await service.route(_event(contact_id))
    first, second = await sent.settled(contact_id, 2)
    assert first.trigger is not None and second.trigger is not None
    assert first.trigger.id != second.trigger.id


async def test_concurrent_checks_enter_once(
    sent: SentMessages, service: EnrollmentService, database: Database, settings: Settings
) -> None:
    contact_id = await _contact(database, points=80)
    changes = await asyncio.gather(
        *(check_entries(database, settings, service.start, contact_id) for _ in range(10))
    )
    entered = [c for found in changes for c in found if c.change == "entered"]
    assert len(entered) == 1
    assert [r.action for r in entered[0].started] == ["started"]
    await sent.settled(contact_id, 1)
    await asyncio.sleep(0.5)
    assert len(sent.for_contact(contact_id)) == 1


async def test_writing_a_contact_checks_its_entry_segments(
    sent: SentMessages, service: EnrollmentService, database: Database, settings: Settings
) -> None:
    contact_id = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    today = f"{datetime.now(UTC):%m-%d}"
    check = entry_checker(database, settings, service.start)
    async with database.session() as session:
        await upsert_contact(
            session=session,
            dialect=database.dialect,
            contact_id=contact_id,
            contact_in=ContactUpsert(email=f"{contact_id}@example.com", attributes={}),
            after_commit=check,
        )
        assert await _memberships(database, contact_id) == []
        await upsert_contact(
            session=session,
            dialect=database.dialect,
            contact_id=contact_id,
            contact_in=ContactUpsert(attributes={"birthday": f"1990-{today}"}),
            after_commit=check,
        )
    (greeting,) = await sent.settled(contact_id, 1)
    assert greeting.template == "greet"
    assert await _memberships(database, contact_id) == ["birthday_candidates"]


async def test_a_failed_start_leaves_the_contact_outside_to_try_again(
    database: Database, settings: Settings
) -> None:
    contact_id = await _contact(database, points=80)
    calls: list[StartJourneyRequest] = []

    async def failing(request: StartJourneyRequest) -> StartJourneyResult:
        calls.append(request)
        raise RuntimeError("Temporal is down")

    journeys = lambda: [EntersOnQualification]  # noqa: E731
    with pytest.raises(RuntimeError):
        await check_entries(database, settings, failing, contact_id, journeys=journeys)
    assert len(calls) == 1
    assert await _memberships(database, contact_id) == []
    await unseed(Generated(database, PREFIX))


async def test_without_entry_journeys_nothing_is_read() -> None:
    class Untouchable:
        def session(self) -> None:
            raise AssertionError("the database was used")

        async def insert_once(self, _: object) -> bool:
            raise AssertionError("the database was used")

    async def never(_: StartJourneyRequest) -> StartJourneyResult:
        raise AssertionError("a journey was started")

    published = [cls for cls in catalog.latest() if not cls.entry_segment]
    found = await check_entries(
        Untouchable(),  # type: ignore[arg-type]
        Settings(),
        never,
        "c-1",
        journeys=lambda: published,
    )
    assert found == []


def test_the_entry_event_id_fits_the_trigger_column() -> None:
    at = datetime(2027, 3, 1, 9, 30, 5, 123, tzinfo=UTC)
    assert entry_event_id("qualified_leads", "c-1", at) == (
        "segment:qualified_leads:c-1:20270301T093005000123"
    )
    long = entry_event_id("qualified_leads", "c" * 200, at)
    assert len(long) <= 200 and long.endswith(":20270301T093005000123")
