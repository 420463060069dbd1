"""Webhooks: POST a signed JSON payload to the team's own service.

The body is `{"message_id", "journey", "step", "contact": {...}, "event": {...} | null,
"payload": {...}}`, sent to the step's `url` or else `JOURNEYMAN_WEBHOOK_URL`, with headers:
- `X-Journeyman-Timestamp`: unix seconds when this attempt was signed;
- `X-Journeyman-Signature`: `v1=<hex HMAC-SHA256(JOURNEYMAN_WEBHOOK_SECRET, "{timestamp}.{body}")>`;
- `X-Journeyman-Message-Id` and `Idempotency-Key`: the same for every attempt of a step, so the
  receiver can drop a repeat.

A receiver checks the signature over the raw bytes it received, before parsing them, and
refuses an old timestamp so a captured request cannot be replayed later:
`verify_webhook_signature` does both, and is what the tests check the sender against.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio.exceptions import ApplicationError

from activities.channels.base import Outgoing
from activities.channels.http import idempotency_headers, json_field, send
from journeyman.settings import Settings
from persistence import Contact
from persistence.models import CONSENT_CHANNELS
from workflows.contracts import ERR_TEMPLATE, Event, SendRequest

TIMESTAMP_HEADER = "X-Journeyman-Timestamp"
SIGNATURE_HEADER = "X-Journeyman-Signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = timedelta(minutes=5)
# The message log's `to_address` column is this wide.
ADDRESS_MAX = 320


@dataclass(frozen=True)
class WebhookCall:
    message_id: str
    url: str
    # Serialized once at compose time: what is signed is byte for byte what is sent.
    body: bytes


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for one body sent at one timestamp."""
    signed = timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_webhook_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    *,
    now: datetime | None = None,
) -> bool:
    """True if `signature` signs `body` at `timestamp` with `secret`, and `timestamp` is
    within `tolerance` of `now` (either side: a clock ahead is as suspect as one behind)."""
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    if abs((now or datetime.now(UTC)) - signed_at) > tolerance:
        return False
    expected = sign_webhook(secret, timestamp, body)
    # Bytes, because compare_digest refuses non-ASCII strings, and a header may hold any.
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def webhook_body(request: SendRequest, contact: Contact) -> dict[str, Any]:
    return {
        "message_id": request.message_id,
        "journey": request.journey,
        "step": request.step,
        "contact": {
            "contact_id": contact.contact_id,
            "email": contact.email,
            "phone": contact.phone,
            "timezone": contact.timezone,
            "locale": contact.locale,
            "attributes": dict(contact.attributes or {}),
            # The receiver sends on its own, so it needs what the contact agreed to.
            "consent": {channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS},
        },
        "event": _event(request.trigger),
        "payload": request.context.get("payload") or {},
    }


class WebhookSender:
    channel = "webhook"

    def __init__(
        self, *, default_url: str, secret: str, http: httpx.AsyncClient, timeout: float
    ) -> None:
        self.default_url = default_url
        self.secret = secret
        self.http = http
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, *, http: httpx.AsyncClient) -> WebhookSender:
        return cls(
            default_url=settings.webhook_url,
            secret=settings.webhook_secret,
            http=http,
            timeout=settings.provider_timeout_seconds,
        )

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        url = request.context.get("url") or self.default_url
        return str(url).strip() or None

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        url = self.address(contact, request)
        if url is None:
            raise ValueError("no webhook URL: set JOURNEYMAN_WEBHOOK_URL or give the step a url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL is not http(s): {loggable_url(url)}")
        try:
            body = json.dumps(
                webhook_body(request, contact), ensure_ascii=False, allow_nan=False
            ).encode()
        except (TypeError, ValueError) as err:
            raise ApplicationError(
                f"webhook payload of {request.step!r} is not JSON: {err}",
                type=ERR_TEMPLATE,
                non_retryable=True,
            ) from err
        return Outgoing(
            channel=self.channel,
            to_address=loggable_url(url),
            subject=None,
            payload=WebhookCall(message_id=request.message_id, url=url, body=body),
        )

    async def deliver(self, outgoing: Outgoing) -> str | None:
        call = outgoing.payload
        if not isinstance(call, WebhookCall):
            raise TypeError(f"not a webhook call: {type(call).__name__}")
        # Signed at each attempt, so a retry hours later is not refused as stale.
        timestamp = str(int(time.time()))
        request = self.http.build_request(
            "POST",
            call.url,
            content=call.body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign_webhook(self.secret, timestamp, call.body),
                **idempotency_headers(call.message_id),
            },
            timeout=self.timeout,
        )
        response = await send(self.http, request, provider="webhook receiver")
        # Receivers owe us no answer; one that names its own id gets it logged.
        return json_field(response, "id")


def loggable_url(url: str) -> str:
    """The URL for the message log: no credentials or query (receivers put tokens there)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"[:ADDRESS_MAX]


def _event(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    occurred_at = event.occurred_at
    return {
        "id": event.id,
        "name": event.name,
        "properties": dict(event.properties),
        "occurred_at": occurred_at.isoformat() if isinstance(occurred_at, datetime) else None,
    }
