"""Webhooks against a receiver that verifies the signature as a team's own service would."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.channels import (
    ERR_PROVIDER_AUTH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    sign_webhook,
    verify_webhook_signature,
)
from workflows.contracts import ERR_TEMPLATE, Event

from .conftest import Serve
from .helpers import MESSAGE_ID, WEBHOOK_SECRET, contact, send_request, settings_for
from .provider import Received, Reply

BODY = b'{"message_id":"m-1","payload":{"order_id":"A-1001"}}'
SIGNED_AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
TIMESTAMP = str(int(SIGNED_AT.timestamp()))


def receiver(received: Received) -> Reply:
    if not verify_webhook_signature(
        WEBHOOK_SECRET,
        received.headers.get(TIMESTAMP_HEADER, ""),
        received.body,
        received.headers.get(SIGNATURE_HEADER, ""),
    ):
        return Reply(401, {"error": "bad signature"})
    return Reply(200, {"id": "rcv-1", "ok": True})


def webhook_sender(url: str, http: httpx.AsyncClient, **settings: Any) -> WebhookSender:
    return WebhookSender.from_settings(settings_for(url, **settings), http=http)


def compose(sender: WebhookSender, **overrides: Any) -> Any:
    request = send_request("webhook", **overrides)
    # Webhooks render no template; the context the activity would pass is unused.
    return sender.compose(request, contact(), {})


async def test_payload_goes_signed_to_the_steps_url(serve: Serve, http: httpx.AsyncClient) -> None:
    provider = serve(receiver)
    sender = webhook_sender(provider.url, http)
    url = f"{provider.url}/crm/journeys?token=receiver-secret"
    outgoing = compose(sender, context={"payload": {"order_id": "A-1001"}, "url": url})

    answer = await sender.deliver(outgoing)

    received = provider.last
    assert answer == "rcv-1"  # the receiver verified the signature, or it would answer 401
    assert received.path == "/crm/journeys?token=receiver-secret"
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Journeyman-Message-Id"] == MESSAGE_ID
    assert received.headers["Idempotency-Key"] == MESSAGE_ID
    timestamp = received.headers[TIMESTAMP_HEADER]
    assert abs(int(timestamp) - time.time()) < 60
    # The documented scheme, computed here independently of the code under test.
    digest = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256
    )
    assert received.headers[SIGNATURE_HEADER] == f"v1={digest.hexdigest()}"
    # The message log names the receiver without the token in its query.
    assert outgoing.to_address == f"{provider.url}/crm/journeys"


async def test_body_names_the_message_the_contact_the_event_and_the_payload(
    serve: Serve, http: httpx.AsyncClient
) -> None:
    provider = serve(receiver)
    sender = webhook_sender(provider.url, http)
    trigger = Event(
        id="evt-1",
        contact_id="c-42",
        name="order_placed",
        properties={"order_id": "A-1001"},
        occurred_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    )

    await sender.deliver(compose(sender, trigger=trigger))

    assert provider.last.path == "/hooks/journeyman"  # the step named no URL: the setting
    assert provider.last.json() == {
        "message_id": MESSAGE_ID,
        "journey": "post_purchase",
        "step": "notify_crm",
        "contact": {
            "contact_id": "c-42",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0958",
            "timezone": "Europe/London",
            "locale": "en-GB",
            "attributes": {"first_name": "Ada", "push_token": "fcm:dEvIcE-tOkEn-42"},
            "consent": {"email": True, "sms": True, "push": True},
        },
        "event": {
            "id": "evt-1",
            "name": "order_placed",
            "properties": {"order_id": "A-1001"},
            "occurred_at": "2026-03-01T09:00:00+00:00",
        },
        "payload": {"order_id": "A-1001"},
    }


def test_without_a_trigger_or_payload_the_body_says_so(http: httpx.AsyncClient) -> None:
    sender = webhook_sender("http://receiver.example", http)

    outgoing = compose(sender, trigger=None, context={})

    body = json.loads(outgoing.payload.body)
    assert body["event"] is None
    assert body["payload"] == {}


async def test_a_receiver_with_another_secret_refuses_and_the_send_is_retried(
    serve: Serve, http: httpx.AsyncClient
) -> None:
    provider = serve(receiver)
    sender = webhook_sender(provider.url, http, webhook_secret="not-the-receivers")

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(compose(sender))

    assert err.value.type == ERR_PROVIDER_AUTH and not err.value.non_retryable


def test_signature_verifies_for_the_exact_body_and_time() -> None:
    signature = sign_webhook(WEBHOOK_SECRET, TIMESTAMP, BODY)

    assert verify_webhook_signature(WEBHOOK_SECRET, TIMESTAMP, BODY, signature, now=SIGNED_AT)
    assert verify_webhook_signature(
        WEBHOOK_SECRET, TIMESTAMP, BODY, signature, now=SIGNED_AT + timedelta(minutes=5)
    )


@pytest.mark.parametrize(
    ("what", "timestamp", "body", "signed_with", "now"),
    [
        ("tampered body", TIMESTAMP, BODY.replace(b"A-1001", b"A-1002"), WEBHOOK_SECRET, SIGNED_AT),
        ("another secret", TIMESTAMP, BODY, "guessed", SIGNED_AT),
        ("moved timestamp", str(int(TIMESTAMP) + 1), BODY, WEBHOOK_SECRET, SIGNED_AT),
        ("stale", TIMESTAMP, BODY, WEBHOOK_SECRET, SIGNED_AT + timedelta(minutes=5, seconds=1)),
        ("from the future", TIMESTAMP, BODY, WEBHOOK_SECRET, SIGNED_AT - timedelta(minutes=6)),
        ("not a timestamp", "yesterday", BODY, WEBHOOK_SECRET, SIGNED_AT),
        ("no timestamp", "", BODY, WEBHOOK_SECRET, SIGNED_AT),
    ],
)
def test_signature_is_refused(
    what: str, timestamp: str, body: bytes, signed_with: str, now: datetime
) -> None:
    # Each case signs BODY at TIMESTAMP, then changes one thing on the way to the receiver.
    signature = sign_webhook(signed_with, TIMESTAMP, BODY)

    assert not verify_webhook_signature(WEBHOOK_SECRET, timestamp, body, signature, now=now), what


@pytest.mark.parametrize("signature", ["", "v1=", "v0=deadbeef", "v1=ü", "garbage"])
def test_malformed_signatures_are_refused(signature: str) -> None:
    assert not verify_webhook_signature(WEBHOOK_SECRET, TIMESTAMP, BODY, signature, now=SIGNED_AT)


def test_a_wider_tolerance_accepts_an_older_signature() -> None:
    signature = sign_webhook(WEBHOOK_SECRET, TIMESTAMP, BODY)
    later = SIGNED_AT + timedelta(minutes=30)

    assert not verify_webhook_signature(WEBHOOK_SECRET, TIMESTAMP, BODY, signature, now=later)
    assert verify_webhook_signature(
        WEBHOOK_SECRET, TIMESTAMP, BODY, signature, timedelta(hours=1), now=later
    )


@pytest.mark.parametrize(
    ("step_url", "default_url", "address"),
    [
        (
            "https://crm.example.com/hook",
            "https://default.example.com/hook",
            "https://crm.example.com/hook",
        ),
        (None, "https://default.example.com/hook", "https://default.example.com/hook"),
        ("", "https://default.example.com/hook", "https://default.example.com/hook"),
        (None, "", None),
    ],
)
def test_address_is_the_steps_url_else_the_setting(
    http: httpx.AsyncClient, step_url: str | None, default_url: str, address: str | None
) -> None:
    sender = webhook_sender("http://unused.invalid", http, webhook_url=default_url)
    request = send_request("webhook", context={"payload": {}, "url": step_url})

    assert sender.address(contact(), request) == address


@pytest.mark.parametrize(
    "url", ["ftp://files.example.com/drop", "javascript:alert(1)", "crm.example.com/hook"]
)
def test_a_url_that_is_not_http_is_refused_before_anything_is_claimed(
    http: httpx.AsyncClient, url: str
) -> None:
    sender = webhook_sender("http://unused.invalid", http)

    with pytest.raises(ValueError, match="not http"):
        compose(sender, context={"url": url})


def test_credentials_in_the_url_stay_out_of_the_message_log(http: httpx.AsyncClient) -> None:
    sender = webhook_sender("http://unused.invalid", http)

    outgoing = compose(sender, context={"url": "https://user:pw@crm.example.com:8443/h?k=v#f"})

    assert outgoing.to_address == "https://crm.example.com:8443/h"
    assert outgoing.payload.url == "https://user:pw@crm.example.com:8443/h?k=v#f"


@pytest.mark.parametrize("payload", [{"tags": {"a", "b"}}, {"score": float("nan")}])
def test_a_payload_that_is_not_json_is_a_step_error(
    http: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    sender = webhook_sender("http://unused.invalid", http)

    with pytest.raises(ApplicationError) as err:
        compose(sender, context={"payload": payload})

    assert err.value.type == ERR_TEMPLATE and err.value.non_retryable
