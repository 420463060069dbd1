"""Email building and SMTP delivery against a real server (the aiosmtpd sink)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from aiosmtplib import SMTPConnectError
from temporalio.exceptions import ApplicationError

from activities import (
    DeliveryUncertainError,
    RenderedEmail,
    SmtpMailer,
    build_email,
    message_id_header,
    sender_domain,
)
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from workflows.contracts import ERR_PERMANENT_SEND

from .conftest import closed_port

RENDERED = RenderedEmail(
    subject="Still thinking about the Trail Runner 2?",
    text="Hi Ada,\n\nYour cart is waiting: 1 x Trail Runner 2, €129.00\n",
    html="<p>Hi Ada,</p><p>Your cart is waiting: 1 &times; Trail Runner 2, €129.00</p>",
)
MESSAGE_ID = "journey:abandoned_cart:c-42:cart-7:run-1:first_reminder"


def email(message_id: str = MESSAGE_ID, recipient: str = "ada@example.com") -> EmailMessage:
    return build_email(
        message_id=message_id,
        sender="Acme Outfitters <hello@shop.example.com>",
        recipient=recipient,
        rendered=RENDERED,
        domain="shop.example.com",
        date=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    )


def test_email_is_multipart_text_then_html() -> None:
    message = email()

    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["From"] == "Acme Outfitters <hello@shop.example.com>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == RENDERED.subject
    assert message["Date"] == "Sun, 01 Mar 2026 09:30:00 +0000"
    assert message["X-Journeyman-Message-Id"] == MESSAGE_ID


def test_email_survives_the_wire_as_seven_bit() -> None:
    raw = email().as_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)

    assert raw.isascii()
    assert b"\r\n" in raw
    assert isinstance(parsed, EmailMessage)
    assert parsed["X-Journeyman-Message-Id"] == MESSAGE_ID
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None and "€129.00" in text.get_content()
    assert html is not None and "&times;" in html.get_content()


def test_message_id_is_stable_per_message_id() -> None:
    first, again = email(), email()
    other = email(message_id=MESSAGE_ID.replace("first", "second"))

    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] == message_id_header(MESSAGE_ID, "shop.example.com")
    assert first["Message-ID"] != other["Message-ID"]
    assert str(first["Message-ID"]).startswith("<")
    assert str(first["Message-ID"]).endswith("@shop.example.com>")
    assert len(str(first["Message-ID"])) == len("<@shop.example.com>") + 32


def test_message_id_domain_comes_from_the_sender() -> None:
    assert sender_domain("Acme <hello@shop.example.com>") == "shop.example.com"
    assert sender_domain("no address") == "journeyman"


def test_a_newline_in_the_address_is_refused() -> None:
    with pytest.raises(ValueError):
        email(recipient="ada@example.com\r\nBcc: everyone@example.com")


def mailer_for(sink: SmtpSink) -> SmtpMailer:
    return SmtpMailer.from_settings(
        Settings(smtp_host=sink.host, smtp_port=sink.port, smtp_timeout_seconds=5)
    )


async def test_mailer_delivers_to_a_real_smtp_server(sink: SmtpSink) -> None:
    await mailer_for(sink).send(email())

    [received] = await sink.wait_for(1)
    assert received["Message-ID"] == email()["Message-ID"]
    assert received["X-Journeyman-Message-Id"] == MESSAGE_ID
    assert received["Subject"] == RENDERED.subject
    assert sink.to("ada@example.com") == [received]


async def test_refused_recipient_is_permanent(sink: SmtpSink) -> None:
    with pytest.raises(ApplicationError) as err:
        await mailer_for(sink).send(email(recipient="bounce@example.com"))

    assert err.value.type == ERR_PERMANENT_SEND
    assert err.value.non_retryable
    assert "550" in err.value.message
    assert sink.messages == []


async def test_unreachable_server_is_retryable() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=closed_port(), timeout=2)

    with pytest.raises(SMTPConnectError):
        await mailer.send(email())


async def test_hang_up_after_data_means_delivery_is_uncertain(hangs_up_after_data: int) -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=hangs_up_after_data, timeout=2)

    with pytest.raises(DeliveryUncertainError):
        await mailer.send(email())


def test_unsubscribe_link_makes_the_one_click_headers() -> None:
    link = "https://shop.example.com/u/token"
    with_link = build_email(
        message_id=MESSAGE_ID,
        sender="hello@shop.example.com",
        recipient="ada@example.com",
        rendered=RENDERED,
        domain="shop.example.com",
        unsubscribe_url=link,
    )

    assert with_link["List-Unsubscribe"] == f"<{link}>"
    assert with_link["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email()["List-Unsubscribe"] is None
    assert email()["List-Unsubscribe-Post"] is None
