"""SMS against a Twilio-style API that checks the path, basic auth and the form like Twilio does."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.channels import ERR_PROVIDER_AUTH, SmsSender
from activities.channels.sms import SmsMessage, e164
from activities.rendering import TemplateRenderer
from workflows.contracts import ERR_PERMANENT_SEND, ERR_TEMPLATE

from .conftest import Serve
from .helpers import (
    MESSAGE_ID,
    SID,
    SMS_TOKEN,
    contact,
    send_request,
    settings_for,
    template_context,
)
from .provider import FakeProvider, Received, Reply

# Twilio's test number that is never valid: the API answers 400 with error 21211.
INVALID_NUMBER = "+15005550001"
SMS_ID = "SM0123456789abcdef0123456789abcdef"


def twilio(received: Received) -> Reply:
    """What Twilio's Messages resource checks, in the order it checks it."""
    if received.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
        return Reply(404, {"code": 20404, "message": "The requested resource was not found"})
    credentials = base64.b64encode(f"{SID}:{SMS_TOKEN}".encode()).decode()
    if received.headers.get("Authorization") != f"Basic {credentials}":
        return Reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
    if received.headers.get("Content-Type") != "application/x-www-form-urlencoded":
        return Reply(400, {"code": 20001, "message": "form-encoded body expected"})
    form = received.form()
    if form["To"] == INVALID_NUMBER:
        message = f"The 'To' number {INVALID_NUMBER} is not a valid phone number."
        return Reply(400, {"code": 21211, "message": message, "status": 400})
    return Reply(201, {"sid": SMS_ID, "status": "queued", "to": form["To"], "body": form["Body"]})


@pytest.fixture
def sender(http: httpx.AsyncClient, renderer: TemplateRenderer) -> SmsSender:
    """An SMS sender for tests that never reach the provider."""
    return SmsSender.from_settings(
        settings_for("http://unused.invalid"), renderer=renderer, http=http
    )


def sms_sender(
    provider: FakeProvider, http: httpx.AsyncClient, renderer: TemplateRenderer, **settings: Any
) -> SmsSender:
    return SmsSender.from_settings(
        settings_for(provider.url, **settings), renderer=renderer, http=http
    )


@pytest.mark.parametrize(
    ("phone", "address"),
    [
        ("+442079460958", "+442079460958"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("+39.333.123.4567", "+393331234567"),
        (None, None),
        ("", None),
        ("020 7946 0958", None),  # national format: no country code to dial
        ("+0441234567", None),  # country codes do not start with 0
        ("+1234567890123456", None),  # 16 digits: longer than E.164 allows
        ("+44 20 7946 0958 ext. 12", None),
        ("+44\n2079460958", None),
    ],
)
def test_address_is_the_phone_in_e164(
    sender: SmsSender, phone: str | None, address: str | None
) -> None:
    who = contact(phone=phone)

    assert e164(phone) == address
    assert sender.address(who, send_request("sms")) == address


async def test_sms_is_posted_as_form_with_basic_auth_and_the_message_id(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(twilio)
    sender = sms_sender(provider, http, renderer)
    request = send_request("sms")
    who = contact()

    outgoing = sender.compose(request, who, template_context(renderer, request, who))
    provider_id = await sender.deliver(outgoing)

    assert provider_id == SMS_ID
    assert (outgoing.channel, outgoing.to_address, outgoing.subject) == (
        "sms",
        "+442079460958",
        None,
    )
    received = provider.last
    assert received.method == "POST"
    form = received.form()
    assert set(form) == {"To", "From", "Body"}
    assert form["To"] == "+442079460958"
    assert form["From"] == "+15005550006"
    assert form["Body"] == outgoing.payload.body
    assert form["Body"].startswith("Acme Outfitters: your cart with the Trail Runner 2 (+1 more)")
    assert received.headers["Idempotency-Key"] == MESSAGE_ID
    assert received.headers["X-Journeyman-Message-Id"] == MESSAGE_ID


async def test_wrong_credentials_are_retried_not_failed_for_good(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(twilio)
    sender = sms_sender(provider, http, renderer, sms_auth_token="rotated-away")
    request = send_request("sms")
    who = contact()
    outgoing = sender.compose(request, who, template_context(renderer, request, who))

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_AUTH
    assert not err.value.non_retryable
    assert "20003 Authenticate" in err.value.message


async def test_invalid_number_fails_for_good_with_the_providers_words(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(twilio)
    sender = sms_sender(provider, http, renderer)
    request = send_request("sms")
    who = contact(phone=INVALID_NUMBER)
    outgoing = sender.compose(request, who, template_context(renderer, request, who))

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PERMANENT_SEND
    assert err.value.non_retryable
    assert err.value.message == (
        f"sms provider 400: 21211 The 'To' number {INVALID_NUMBER} is not a valid phone number."
    )
    assert len(provider.received) == 1


async def test_accepted_without_a_sid_is_still_sent(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: Reply(201, b"queued"))
    sender = sms_sender(provider, http, renderer)
    request = send_request("sms")
    who = contact()

    outgoing = sender.compose(request, who, template_context(renderer, request, who))

    assert await sender.deliver(outgoing) is None


def test_a_long_text_is_sent_whole_with_a_warning(
    sender: SmsSender, renderer: TemplateRenderer, caplog: pytest.LogCaptureFixture
) -> None:
    long_name = "Merino hiking socks, pack of three, charcoal grey, size 42 to 45"
    request = send_request(
        "sms", context={"cart_id": "cart-7", "items": [{"name": long_name}], "coupon": "SAVE10"}
    )
    who = contact()

    with caplog.at_level(logging.WARNING):
        outgoing = sender.compose(request, who, template_context(renderer, request, who))

    body = outgoing.payload.body
    assert isinstance(outgoing.payload, SmsMessage)
    assert len(body) > 160
    assert long_name in body and body.endswith("Reply STOP to opt out")
    assert "several segments" in caplog.text and "abandoned_cart/last_chance" in caplog.text


def test_a_text_no_provider_takes_fails_before_anything_is_claimed(
    sender: SmsSender, renderer: TemplateRenderer
) -> None:
    items = [{"name": "x" * 1700}]
    request = send_request("sms", context={"cart_id": "cart-7", "items": items})
    who = contact()

    with pytest.raises(ApplicationError) as err:
        sender.compose(request, who, template_context(renderer, request, who))

    assert err.value.type == ERR_TEMPLATE and err.value.non_retryable
    assert "1600" in err.value.message


def test_a_template_without_an_sms_version_is_a_template_error(
    sender: SmsSender, renderer: TemplateRenderer
) -> None:
    request = send_request("sms", template="welcome_series/welcome", context={})
    who = contact()

    with pytest.raises(ApplicationError) as err:
        sender.compose(request, who, template_context(renderer, request, who))

    assert err.value.type == ERR_TEMPLATE
    assert "welcome_series/welcome.sms.txt" in err.value.message


def test_composing_for_a_contact_without_a_number_is_refused(
    sender: SmsSender, renderer: TemplateRenderer
) -> None:
    request = send_request("sms")
    who = contact(phone="not a number")

    with pytest.raises(ValueError, match=r"has no E\.164 phone number"):
        sender.compose(request, who, template_context(renderer, request, who))
