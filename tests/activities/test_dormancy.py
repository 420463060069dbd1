"""List hygiene: a dormant contact gets no marketing email, and their next event wakes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from temporalio.testing import ActivityEnvironment

from api.schemas.events import EventIn
from api.services.events import ingest_event
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database
from persistence.models import utcnow
from workflows.contracts import Event, SendResult, StartJourneyResult

from .conftest import AddContact, make_activities
from .samples import ORDER, event
from .sends import Clock, message_row, send_request

run = ActivityEnvironment().run
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class NoRouting:
    """Routing is not what these tests are about: every event concerns no journey."""

    async def route_and_record(self, event: Event) -> list[StartJourneyResult]:
        return []


async def dormant_at(database: Database, contact_id: str) -> datetime | None:
    async with database.session() as session:
        contact = await session.get(Contact, contact_id, populate_existing=True)
    assert contact is not None
    return contact.dormant_at


async def ingest(database: Database, contact_id: str, **fields: object) -> None:
    await ingest_event(
        database=database,
        enrollments=cast(EnrollmentService, NoRouting()),
        event_in=EventIn.model_validate(
            {"contact_id": contact_id, "name": "page_viewed", **fields}
        ),
    )


async def test_marketing_email_to_a_dormant_contact_is_suppressed(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts = make_activities(database, settings, clock=Clock(NOON))
    request = send_request(await add_contact(dormant_at=NOON - timedelta(days=3)))

    result = await run(acts.send_message, request)

    assert result == SendResult(request.message_id, status="suppressed", reason="dormant")
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason) == ("suppressed", "dormant")
    assert sink.messages == []


async def test_transactional_email_still_reaches_a_dormant_contact(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts = make_activities(database, settings, clock=Clock(NOON))
    request = send_request(
        await add_contact(dormant_at=NOON - timedelta(days=3)),
        journey="post_purchase",
        step="thank_you",
        template="post_purchase/thank_you",
        context=ORDER,
        trigger=event("order_placed", ORDER),
        category="transactional",
    )

    assert (await run(acts.send_message, request)).status == "sent"
    assert len(sink.messages) == 1


async def test_an_active_contact_gets_marketing_email(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts = make_activities(database, settings, clock=Clock(NOON))

    assert (await run(acts.send_message, send_request(await add_contact()))).status == "sent"
    assert len(sink.messages) == 1


async def test_a_new_event_clears_dormancy(database: Database, add_contact: AddContact) -> None:
    contact_id = await add_contact(dormant_at=utcnow() - timedelta(days=2))

    await ingest(database, contact_id, id=f"evt-{contact_id}")

    assert await dormant_at(database, contact_id) is None


async def test_a_repeated_event_id_does_not_clear_a_later_dormancy(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    await ingest(database, contact_id, id=f"evt-{contact_id}")
    async with database.session() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.dormant_at = utcnow()
        session.add(contact)
        await session.commit()

    await ingest(database, contact_id, id=f"evt-{contact_id}")  # a retry: not a new event

    assert await dormant_at(database, contact_id) is not None


async def test_an_event_from_before_the_dormancy_does_not_wake_the_contact(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact(dormant_at=utcnow() - timedelta(days=1))

    await ingest(database, contact_id, occurred_at=utcnow() - timedelta(days=10))

    assert await dormant_at(database, contact_id) is not None
