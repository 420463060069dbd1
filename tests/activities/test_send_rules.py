"""The rules a send passes at send time: consent, quiet hours, frequency caps, unsubscribe link.

Against the real database and SMTP sink; "now" is a clock the test sets.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import JourneyActivities
from journeyman.settings import Settings
from journeyman.signing import Signer
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database
from workflows.contracts import ERR_JOURNEY_DEFINITION, QuietHours, SendRequest, SendResult

from .conftest import AddContact, make_activities
from .samples import ORDER, event
from .sends import Clock, message_row, no_message_row, put_message, send_request

run = ActivityEnvironment().run

# A Tuesday, 22:30 in Rome (CET, UTC+1): inside 21:00-08:00.
ROME_NIGHT = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)
ROME_MORNING = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)  # 08:00 in Rome
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def rules(
    database: Database, settings: Settings, now: datetime, **changes: Any
) -> tuple[JourneyActivities, Clock]:
    """Activities with these settings changed and a clock at `now`."""
    clock = Clock(now)
    return make_activities(database, settings.model_copy(update=changes), clock=clock), clock


def thank_you(contact_id: str) -> SendRequest:
    return send_request(
        contact_id,
        journey="post_purchase",
        step="thank_you",
        template="post_purchase/thank_you",
        context=ORDER,
        trigger=event("order_placed", ORDER),
        category="transactional",
    )


# ----- consent -----------------------------------------------------------------------------


async def test_marketing_without_consent_is_recorded_unsubscribed_and_not_sent(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    request = send_request(await add_contact(email_consent=False))

    result = await run(acts.send_message, request)

    assert result == SendResult(request.message_id, status="suppressed", reason="unsubscribed")
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason, row.category, row.attempts) == (
        "suppressed",
        "unsubscribed",
        "marketing",
        0,
    )
    assert sink.messages == []


async def test_transactional_goes_out_without_marketing_consent(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    request = thank_you(await add_contact(email_consent=False))

    result = await run(acts.send_message, request)

    assert result.status == "sent"
    [received] = sink.messages
    assert received["Subject"] == "Thank you for your order A-1001"
    assert (await message_row(database, request.message_id)).category == "transactional"


async def test_consent_is_per_channel(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    request = send_request(await add_contact(sms_consent=False, push_consent=False))

    assert (await run(acts.send_message, request)).status == "sent"
    assert len(sink.messages) == 1


# ----- quiet hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "retry_at"),
    [
        (ROME_NIGHT, ROME_MORNING),
        # 01:30 in Rome, the same window seen after midnight.
        (datetime(2026, 3, 11, 0, 30, tzinfo=UTC), ROME_MORNING),
        # 23:00 CET on the night Rome springs forward: 08:00 is CEST, UTC+2.
        (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
    ],
)
async def test_quiet_hours_defer_to_the_end_of_the_window_in_the_contacts_zone(
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    add_contact: AddContact,
    now: datetime,
    retry_at: datetime,
) -> None:
    acts, clock = rules(database, settings, now, quiet_hours="21:00-08:00")
    request = send_request(await add_contact(timezone="Europe/Rome"))

    result = await run(acts.send_message, request)

    assert result == SendResult(
        request.message_id, status="deferred", reason="quiet_hours", retry_at=retry_at
    )
    assert sink.messages == []
    assert await no_message_row(database, request.message_id)

    # The workflow calls again at retry_at: outside the window, the retry claims and sends.
    clock.now = retry_at
    again = await run(acts.send_message, SendRequest(**{**vars(request), "attempt": 2}))

    assert again.status == "sent"
    assert len(sink.messages) == 1
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts, row.created_at.replace(tzinfo=UTC)) == ("sent", 1, retry_at)


async def test_quiet_hours_are_local_to_the_contact(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # 22:30 in Rome is 21:30 in London and 17:30 in New York.
    acts, _ = rules(database, settings, ROME_NIGHT, quiet_hours="21:45-08:00")
    rome = send_request(await add_contact(timezone="Europe/Rome"))
    london = send_request(await add_contact(timezone="Europe/London"))

    assert (await run(acts.send_message, rome)).status == "deferred"
    assert (await run(acts.send_message, london)).status == "sent"


async def test_without_a_contact_zone_the_journeys_then_the_global_default_applies(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # 21:30 UTC is 03:00 in Kolkata (UTC+05:30), 17:30 in New York.
    acts, _ = rules(
        database, settings, ROME_NIGHT, quiet_hours="21:00-08:00", default_timezone="Asia/Kolkata"
    )
    contact_id = await add_contact(timezone=None)

    by_global = await run(acts.send_message, send_request(contact_id))
    by_journey = await run(
        acts.send_message, send_request(contact_id, default_timezone="America/New_York")
    )

    assert (by_global.status, by_global.retry_at) == (
        "deferred",
        datetime(2026, 3, 11, 2, 30, tzinfo=UTC),  # 08:00 in Kolkata
    )
    assert by_journey.status == "sent"


async def test_quiet_hours_skip_records_the_send_suppressed(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(
        database, settings, ROME_NIGHT, quiet_hours="21:00-08:00", quiet_hours_policy="skip"
    )
    request = send_request(await add_contact(timezone="Europe/Rome"))

    result = await run(acts.send_message, request)

    assert result == SendResult(request.message_id, status="suppressed", reason="quiet_hours")
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason) == ("suppressed", "quiet_hours")
    assert sink.messages == []


async def test_a_journeys_quiet_hours_override_the_global_ones(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # Globally none; this step keeps lunchtime (13:00 in Rome) quiet, and skips.
    acts, _ = rules(database, settings, NOON, quiet_hours="")
    contact_id = await add_contact(timezone="Europe/Rome")
    lunch = QuietHours(start="12:30", end="14:00", policy="skip")

    held = await run(acts.send_message, send_request(contact_id, quiet_hours=lunch))
    plain = await run(acts.send_message, send_request(contact_id, step="second"))

    assert (held.status, held.reason) == ("suppressed", "quiet_hours")
    assert plain.status == "sent"


async def test_quiet_hours_disabled_by_the_journey_send_at_night(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, ROME_NIGHT, quiet_hours="21:00-08:00")
    request = send_request(
        await add_contact(timezone="Europe/Rome"), quiet_hours=QuietHours(enabled=False)
    )

    assert (await run(acts.send_message, request)).status == "sent"


async def test_transactional_sends_ignore_quiet_hours(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, ROME_NIGHT, quiet_hours="21:00-08:00")

    result = await run(acts.send_message, thank_you(await add_contact(timezone="Europe/Rome")))

    assert result.status == "sent"


async def test_malformed_quiet_hours_fail_the_step_and_send_nothing(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    request = send_request(await add_contact(), quiet_hours=QuietHours(start="9pm"))

    with pytest.raises(ApplicationError) as err:
        await run(acts.send_message, request)

    assert err.value.type == ERR_JOURNEY_DEFINITION and err.value.non_retryable
    row = await message_row(database, request.message_id)
    assert (row.status, row.reason) == ("failed", "invalid_quiet_hours")
    assert sink.messages == []


# ----- frequency caps ----------------------------------------------------------------------


async def test_a_cap_counts_marketing_sends_across_journeys_and_skips_the_next(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, clock = rules(database, settings, NOON, frequency_caps="email:2/24h")
    contact_id = await add_contact()

    first = await run(acts.send_message, send_request(contact_id, journey="welcome_series"))
    clock.now = NOON + timedelta(hours=1)
    second = await run(acts.send_message, send_request(contact_id, journey="abandoned_cart"))
    clock.now = NOON + timedelta(hours=2)
    third = send_request(contact_id, journey="post_purchase", step="review_request")
    capped = await run(acts.send_message, third)

    assert (first.status, second.status) == ("sent", "sent")
    assert capped == SendResult(third.message_id, status="suppressed", reason="frequency_cap")
    assert (await message_row(database, third.message_id)).reason == "frequency_cap"
    assert len(sink.messages) == 2


async def test_a_cap_defers_until_the_oldest_counted_message_leaves_the_window(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, clock = rules(database, settings, NOON, frequency_caps="email:2/24h,email:3/7d")
    contact_id = await add_contact()
    await run(acts.send_message, send_request(contact_id, journey="welcome_series"))
    clock.now = NOON + timedelta(hours=5)
    await run(acts.send_message, send_request(contact_id, journey="abandoned_cart"))
    clock.now = NOON + timedelta(hours=6)
    request = send_request(contact_id, journey="post_purchase", on_cap="defer")

    held = await run(acts.send_message, request)

    slot = NOON + timedelta(hours=24)
    assert held == SendResult(
        request.message_id, status="deferred", reason="frequency_cap", retry_at=slot
    )
    assert await no_message_row(database, request.message_id)
    # At retry_at the first message has left the 24 h window: the retry sends.
    clock.now = slot
    assert (await run(acts.send_message, request)).status == "sent"
    # Now 3 in 7 days: the next slot frees when the first leaves that window.
    clock.now = slot + timedelta(hours=1)
    fourth = send_request(contact_id, journey="fourth", on_cap="defer")
    assert (await run(acts.send_message, fourth)).retry_at == NOON + timedelta(days=7)
    assert len(sink.messages) == 3


async def test_transactional_sends_neither_count_nor_are_capped(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON, frequency_caps="email:1/24h")
    contact_id = await add_contact()

    receipts = [await run(acts.send_message, thank_you(contact_id)) for _ in range(2)]
    marketing = await run(acts.send_message, send_request(contact_id))
    receipt = await run(acts.send_message, thank_you(contact_id))

    assert [r.status for r in [*receipts, marketing, receipt]] == ["sent"] * 4


async def test_only_marketing_messages_that_may_go_out_on_that_channel_count(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON, frequency_caps="email:1/24h")
    contact_id = await add_contact()
    # Within the window: an SMS that went out, an email suppressed, an email that failed.
    for channel, status in [("sms", "sent"), ("email", "suppressed"), ("email", "failed")]:
        earlier = send_request(contact_id, channel=channel, journey=f"{channel}-{status}")
        await put_message(database, earlier, status=status, created_at=NOON - timedelta(hours=1))

    assert (await run(acts.send_message, send_request(contact_id))).status == "sent"
    # ...and what did go out does count.
    assert (await run(acts.send_message, send_request(contact_id, journey="b"))).status == (
        "suppressed"
    )


async def test_a_retry_of_a_claimed_message_is_not_held_by_its_own_slot(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, clock = rules(database, settings, NOON, frequency_caps="email:1/24h")
    request = send_request(await add_contact())
    # The first attempt claimed the only slot, then SMTP failed before the message was sent.
    await put_message(database, request, status="retrying", attempts=1, created_at=NOON)
    clock.now = NOON + timedelta(minutes=1)

    assert (await run(acts.send_message, request)).status == "sent"
    assert (await message_row(database, request.message_id)).attempts == 2


# ----- the unsubscribe link ----------------------------------------------------------------


async def test_marketing_email_carries_the_one_click_unsubscribe_link(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    contact_id = await add_contact()

    await run(acts.send_message, send_request(contact_id))

    [received] = sink.messages
    header = str(received["List-Unsubscribe"])
    assert header.startswith("<https://shop.example.com/u/") and header.endswith(">")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = header[1:-1]
    text, html = received.get_body(("plain",)), received.get_body(("html",))
    assert text is not None and f"Unsubscribe: {link}" in text.get_content()
    assert html is not None and f'href="{link}"' in html.get_content()
    # The link is signed for this contact and channel.
    claim = Signer(settings.secret_key).read_unsubscribe(
        link.rsplit("/", 1)[1], max_age=timedelta(days=settings.unsubscribe_link_max_age_days)
    )
    assert (claim.contact_id, claim.channel) == (contact_id, "email")


async def test_the_unsubscribe_header_stays_one_unencoded_line(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # Mailbox providers read the URL as is: a long link must not be folded or RFC 2047-encoded.
    acts, _ = rules(database, settings, NOON)
    contact_id = f"c-{secrets.token_hex(90)}"  # random: the token is compressed
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        await session.commit()

    await run(acts.send_message, send_request(contact_id))

    [received] = sink.messages
    # As it came over the wire: unfolded, no encoded-words.
    wire = dict(received.raw_items())["List-Unsubscribe"]
    assert len(wire) > 200  # far past the 78 columns where folding starts
    assert wire.startswith("<https://shop.example.com/u/") and wire.endswith(">")
    assert "=?" not in wire and "\n" not in wire


async def test_transactional_email_has_no_unsubscribe_link_even_if_the_step_passes_one(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    acts, _ = rules(database, settings, NOON)
    request = thank_you(await add_contact())
    request.context = {**ORDER, "unsubscribe_url": "https://evil.example.com/"}

    await run(acts.send_message, request)

    [received] = sink.messages
    assert received["List-Unsubscribe"] is None
    assert received["List-Unsubscribe-Post"] is None
    text = received.get_body(("plain",))
    assert text is not None and "Unsubscribe" not in text.get_content()
