"""The generic webhook connector against a real local receiver that checks the signature as a
team's service would, and the generic inbound format."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from activities.crm import (
    CrmConnector,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
    InvalidInboundPayload,
    WebhookCrmConnector,
    parse_generic_webhook,
    verify_generic_webhook,
)
from tests.channels.provider import FakeProvider, Handler, Received, Reply

from .helpers import contact, task_request

SECRET = "crm-whsec-0123456789"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def verifying(answer: Reply) -> Handler:
    """A receiver that refuses unsigned or forged calls with 401, else gives `answer`."""

    def handle(received: Received) -> Reply:
        headers = dict(received.headers.items())
        if not verify_generic_webhook(SECRET, headers, received.body):
            return Reply(401, {"error": "bad signature"})
        return answer

    return handle


@pytest.fixture
def receiver() -> Iterator[FakeProvider]:
    """A receiver whose answer a test sets with `receiver.handler = verifying(Reply(...))`."""
    with FakeProvider(verifying(Reply(200))).running() as provider:
        yield provider


def connector(
    receiver: FakeProvider, http: httpx.AsyncClient, **overrides: Any
) -> WebhookCrmConnector:
    values: dict[str, Any] = {
        "url": f"{receiver.url}/crm/journeyman",
        "secret": SECRET,
        "http": http,
        "timeout": 5.0,
        **overrides,
    }
    return WebhookCrmConnector(**values)


async def test_upsert_posts_signed_contacts(
    receiver: FakeProvider, http: httpx.AsyncClient
) -> None:
    crm: CrmConnector = connector(receiver, http)
    outcomes = await crm.upsert_contacts([contact(1, crm_id="crm-1"), contact(2)])

    assert receiver.last.path == "/crm/journeyman"
    assert receiver.last.json() == {
        "type": "contacts.upsert",
        "contacts": [
            {
                "contact_id": "c-1",
                "email": "lead1@example.com",
                "crm_id": "crm-1",
                "properties": {"journeyman_score": 51, "lifecyclestage": "lead"},
            },
            {
                "contact_id": "c-2",
                "email": "lead2@example.com",
                "crm_id": None,
                "properties": {"journeyman_score": 52, "lifecyclestage": "lead"},
            },
        ],
    }
    # An empty 2xx: every contact went through, with the id it already had.
    assert [(o.contact_id, o.crm_id, o.error) for o in outcomes] == [
        ("c-1", "crm-1", None),
        ("c-2", None, None),
    ]


async def test_the_answer_names_ids_and_per_contact_errors(
    receiver: FakeProvider, http: httpx.AsyncClient
) -> None:
    receiver.handler = verifying(
        Reply(
            200,
            {
                "results": [
                    {"contact_id": "c-1", "crm_id": "crm-9"},
                    {"contact_id": "c-2", "error": "email bounced permanently"},
                    {"contact_id": "c-999", "crm_id": "not ours"},
                    "garbage",
                ]
            },
        )
    )
    outcomes = await connector(receiver, http).upsert_contacts([contact(1), contact(2), contact(3)])
    assert [(o.contact_id, o.crm_id, o.error) for o in outcomes] == [
        ("c-1", "crm-9", None),
        ("c-2", None, "email bounced permanently"),
        ("c-3", None, None),
    ]


async def test_more_than_max_batch_is_refused_before_calling(
    receiver: FakeProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="3 contacts"):
        await connector(receiver, http, max_batch=2).upsert_contacts([contact(n) for n in range(3)])
    assert receiver.received == []
    assert await connector(receiver, http).upsert_contacts([]) == []
    assert receiver.received == []


async def test_task_is_signed_and_idempotent(
    receiver: FakeProvider, http: httpx.AsyncClient
) -> None:
    receiver.handler = verifying(Reply(201, {"id": "T-77"}))
    request = task_request(crm_id="crm-1")
    assert await connector(receiver, http).create_task(request) == "T-77"
    assert receiver.last.headers["Idempotency-Key"] == request.task_id
    assert receiver.last.json() == {
        "type": "task.create",
        "task": {
            "task_id": request.task_id,
            "contact_id": "c-1",
            "crm_id": "crm-1",
            "email": "lead1@example.com",
            "owner_id": "7001",
            "subject": request.subject,
            "body": request.body,
            "due_at": "2026-03-02T09:00:00+00:00",
        },
    }

    receiver.handler = verifying(Reply(204))
    assert await connector(receiver, http).create_task(request) == request.task_id


async def test_a_receiver_with_another_secret_refuses_it(
    receiver: FakeProvider, http: httpx.AsyncClient
) -> None:
    crm = connector(receiver, http, secret="not-the-receivers")
    with pytest.raises(CrmUnavailable, match="webhook 401"):
        await crm.upsert_contacts([contact(1)])


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply(429, {"error": "slow down"}, {"Retry-After": "30"}), CrmRateLimited, "429"),
        (Reply(503, b"<html>maintenance</html>"), CrmUnavailable, "503: <html>maintenance"),
        (Reply(500, {"error": "boom"}), CrmUnavailable, "500: boom"),
        (Reply(403, {"error": "forbidden"}), CrmUnavailable, "403"),
        (Reply(422, {"message": "unknown field score"}), CrmRejected, "422: unknown field"),
        (Reply(302, b"", {"Location": "https://elsewhere"}), CrmRejected, "302"),
    ],
)
async def test_answers_are_sorted_for_retries(
    receiver: FakeProvider,
    http: httpx.AsyncClient,
    reply: Reply,
    error: type[Exception],
    message: str,
) -> None:
    receiver.handler = verifying(reply)
    with pytest.raises(error, match=message) as raised:
        await connector(receiver, http).upsert_contacts([contact(1)])
    if isinstance(raised.value, CrmRateLimited):
        assert raised.value.retry_after == 30.0


# ---- inbound ------------------------------------------------------------------------------

BODY = json.dumps(
    {
        "events": [
            {
                "id": "evt-1",
                "contact_id": "c-42",
                "changes": {"lifecyclestage": "customer", "phone": None},
                "occurred_at": "2026-03-01T09:29:00Z",
            },
            {
                "id": "evt-2",
                "crm_id": 9001,
                "changes": {"journeyman_score": 12.5, "vip": True},
                "occurred_at": "2026-03-01T10:29:00+01:00",
            },
        ]
    }
).encode()


def headers_for(body: bytes, at: datetime = NOW, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign_webhook(secret, timestamp, body),
    }


def test_a_signed_inbound_body_verifies_whatever_the_header_case() -> None:
    headers = headers_for(BODY)
    assert verify_generic_webhook(SECRET, headers, BODY, now=NOW)
    lowered = {name.lower(): value for name, value in headers.items()}
    assert verify_generic_webhook(SECRET, lowered, BODY, now=NOW)
    assert verify_generic_webhook(SECRET, httpx.Headers(headers), BODY, now=NOW)


def test_forged_edited_stale_or_unsigned_bodies_are_refused() -> None:
    assert not verify_generic_webhook(SECRET, headers_for(BODY, secret="forger"), BODY, now=NOW)
    edited = BODY.replace(b"customer", b"evangelist")
    assert not verify_generic_webhook(SECRET, headers_for(BODY), edited, now=NOW)
    stale = headers_for(BODY, at=NOW - timedelta(minutes=6))
    assert not verify_generic_webhook(SECRET, stale, BODY, now=NOW)
    assert not verify_generic_webhook(SECRET, {}, BODY, now=NOW)
    assert not verify_generic_webhook("", headers_for(BODY, secret=""), BODY, now=NOW)


def test_verification_uses_the_clock_by_default() -> None:
    assert verify_generic_webhook(SECRET, headers_for(BODY, at=datetime.now(UTC)), BODY)
    assert time.time() > NOW.timestamp()  # so NOW-signed bodies are stale without `now`
    assert not verify_generic_webhook(SECRET, headers_for(BODY), BODY)


def test_inbound_events_become_one_change_per_field() -> None:
    changes = parse_generic_webhook(BODY)
    assert [
        (c.event_id, c.contact_id, c.crm_id, c.remote_field, c.value, c.occurred_at)
        for c in changes
    ] == [
        (
            "evt-1",
            "c-42",
            None,
            "lifecyclestage",
            "customer",
            datetime(2026, 3, 1, 9, 29, tzinfo=UTC),
        ),
        ("evt-1", "c-42", None, "phone", None, datetime(2026, 3, 1, 9, 29, tzinfo=UTC)),
        ("evt-2", None, "9001", "journeyman_score", 12.5, datetime(2026, 3, 1, 9, 29, tzinfo=UTC)),
        ("evt-2", None, "9001", "vip", True, datetime(2026, 3, 1, 9, 29, tzinfo=UTC)),
    ]


def test_a_time_without_offset_is_utc() -> None:
    body = {
        "events": [
            {
                "id": "e",
                "contact_id": "c",
                "changes": {"a": 1},
                "occurred_at": "2026-03-01T09:29:00",
            }
        ]
    }
    (change,) = parse_generic_webhook(json.dumps(body).encode())
    assert change.occurred_at == datetime(2026, 3, 1, 9, 29, tzinfo=UTC)


def _event(**fields: Any) -> bytes:
    event = {
        "id": "e-1",
        "contact_id": "c-1",
        "changes": {"a": 1},
        "occurred_at": "2026-03-01T09:00:00Z",
    }
    event.update(fields)
    return json.dumps({"events": [event]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "events"),
        (b'{"events": [1]}', r"events\[0\] is not an object"),
        (_event(id=""), r"events\[0\]\.id"),
        (_event(id="x" * 201), r"events\[0\]\.id"),
        (_event(contact_id=None), "neither contact_id nor crm_id"),
        (_event(contact_id=["c"]), "contact_id must be a string"),
        (_event(changes={}), "changes must be a non-empty object"),
        (_event(changes={"a": {"nested": 1}}), r"changes\.a must be"),
        (_event(occurred_at="last tuesday"), "occurred_at is not an ISO 8601"),
        (_event(occurred_at=1772355600), "occurred_at must be"),
    ],
)
def test_a_malformed_inbound_body_is_invalid(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInboundPayload, match=message):
        parse_generic_webhook(body)
