"""send_message against a real database and a real SMTP server: claim before send."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import JourneyActivities, SmtpMailer
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database
from workflows.contracts import ERR_PERMANENT_SEND, ERR_TEMPLATE, SendResult

from .conftest import AddContact, closed_port, make_activities
from .sends import message_row, send_request

run = ActivityEnvironment().run


async def test_sends_once_and_records_it(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    contact_id = await add_contact(attributes={"first_name": "Ada"})
    request = send_request(contact_id)

    result = await run(activities.send_message, request)

    assert result.status == "sent" and result.reason is None and result.sent_at is not None
    [received] = sink.messages
    assert received["To"] == "ada@example.com"
    assert received["From"] == "Acme Outfitters <hello@shop.example.com>"
    assert received["Subject"] == "Still thinking about the Trail Runner 2?"
    assert received["X-Journeyman-Message-Id"] == request.message_id
    row = await message_row(database, request.message_id)
    assert row.status == "sent"
    assert row.to_address == "ada@example.com"
    assert row.subject == received["Subject"]
    assert row.provider_message_id == received["Message-ID"]
    assert row.attempts == 1
    assert row.sent_at is not None


async def test_same_message_id_again_sends_nothing_and_answers_the_same(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact())
    first = await run(activities.send_message, request)

    again = await run(activities.send_message, request)

    assert again == first
    assert len(sink.messages) == 1
    assert (await message_row(database, request.message_id)).attempts == 1


@pytest.mark.parametrize("email", [None, "", "   "])
async def test_contact_without_address_is_suppressed(
    activities: JourneyActivities,
    database: Database,
    sink: SmtpSink,
    add_contact: AddContact,
    email: str | None,
) -> None:
    request = send_request(await add_contact(email=email))

    result = await run(activities.send_message, request)

    assert result == SendResult(request.message_id, status="suppressed", reason="no_address")
    assert sink.messages == []
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason, row.attempts) == ("suppressed", "no_address", 0)


async def test_unknown_contact_is_suppressed(
    activities: JourneyActivities, database: Database, sink: SmtpSink
) -> None:
    request = send_request(f"c-unknown-{uuid.uuid4().hex[:6]}")

    result = await run(activities.send_message, request)

    assert (result.status, result.reason) == ("suppressed", "no_address")
    assert sink.messages == []


async def test_other_channels_are_suppressed_for_now(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact(phone="+441234567890"), channel="sms")

    result = await run(activities.send_message, request)

    assert (result.status, result.reason) == ("suppressed", "unsupported_channel")
    assert (await message_row(database, request.message_id)).status == "suppressed"
    assert sink.messages == []


async def test_smtp_outage_hands_the_claim_back_for_the_retry(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact())
    down = make_activities(
        database, settings, mailer=SmtpMailer(host="127.0.0.1", port=closed_port(), timeout=2)
    )

    with pytest.raises(Exception) as err:
        await run(down.send_message, request)
    assert not isinstance(err.value, ApplicationError)  # retryable by Temporal
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.reason is not None and "SMTPConnectError" in row.reason

    result = await run(make_activities(database, settings).send_message, request)

    assert result.status == "sent"
    assert len(sink.messages) == 1
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_refused_recipient_fails_for_good(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact(email="bounce@example.com"))

    with pytest.raises(ApplicationError) as err:
        await run(activities.send_message, request)

    assert err.value.type == ERR_PERMANENT_SEND and err.value.non_retryable
    row = await message_row(database, request.message_id)
    assert row.status == "failed"
    assert row.reason is not None and "550" in row.reason
    # The provider's words are kept, the refused address is not (tests/security/test_redaction.py).
    assert "bounce@example.com" not in row.reason
    again = await run(activities.send_message, request)
    assert (again.status, again.reason) == ("failed", row.reason)
    assert sink.messages == []


async def test_template_error_claims_nothing_and_is_not_retried(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact(), context={"cart_id": "cart-7"})

    with pytest.raises(ApplicationError) as err:
        await run(activities.send_message, request)

    assert err.value.type == ERR_TEMPLATE and err.value.non_retryable
    row = await message_row(database, request.message_id)
    assert row.status == "failed" and row.attempts == 0
    assert row.reason is not None and "'items' is undefined" in row.reason
    assert sink.messages == []


async def test_hang_up_after_the_message_records_uncertain_delivery(
    database: Database, settings: Settings, add_contact: AddContact, hangs_up_after_data: int
) -> None:
    request = send_request(await add_contact())
    activities = make_activities(
        database, settings, mailer=SmtpMailer(host="127.0.0.1", port=hangs_up_after_data, timeout=2)
    )

    result = await run(activities.send_message, request)

    assert (result.status, result.reason) == ("failed", "uncertain_delivery")
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason, row.attempts) == ("failed", "uncertain_delivery", 1)
    assert await run(activities.send_message, request) == result


async def test_racing_attempts_send_once(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    # The primary key on message_id is the claim: of two attempts racing, one sends.
    request = send_request(await add_contact())

    results = await asyncio.gather(*(run(activities.send_message, request) for _ in range(4)))

    assert len(sink.messages) == 1
    assert "sent" in {result.status for result in results}
    assert (await message_row(database, request.message_id)).status == "sent"
