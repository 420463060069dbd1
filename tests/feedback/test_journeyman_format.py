"""Journeyman's own feedback format: `{"events": [...]}` with the feedback secret as bearer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import DEV_FEEDBACK_SECRET, Settings
from persistence import Database
from persistence.models import as_utc

from .helpers import (
    BEARER,
    WEBHOOK,
    client_of,
    consent_events,
    contact,
    engagements,
    event,
    message,
    sent_email,
)

AT = "2026-03-10T12:00:00Z"


async def post(hook: httpx.AsyncClient, *events: dict[str, Any]) -> httpx.Response:
    return await hook.post(WEBHOOK, json={"events": list(events)}, headers=BEARER)


async def test_delivered_stamps_the_message_once_and_a_replay_is_a_duplicate(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    delivered = event(sent.message_id, at=AT)

    first = await post(hook, delivered)
    again = await post(hook, {**delivered, "at": "2026-03-11T09:00:00Z"})

    assert first.status_code == 200, first.text
    assert first.json() == {
        "events": [
            {"id": delivered["id"], "outcome": "applied", "message_id": sent.message_id,
             "reason": None}
        ]
    }  # fmt: skip
    assert again.json()["events"][0]["outcome"] == "duplicate"
    stored = await message(database, sent.message_id)
    assert stored.delivered_at is not None
    assert as_utc(stored.delivered_at) == datetime(2026, 3, 10, 12, tzinfo=UTC)
    [recorded] = await engagements(database, sent.message_id)
    assert (recorded.kind, recorded.source_id) == ("delivered", f"journeyman:{delivered['id']}")


@pytest.mark.parametrize("brackets", [True, False])
async def test_a_message_is_found_by_its_message_id_header_too(
    hook: httpx.AsyncClient, database: Database, contact_id: str, brackets: bool
) -> None:
    sent = await sent_email(database, contact_id)
    header = sent.provider_message_id or ""
    assert header.startswith("<")

    response = await post(hook, event(header if brackets else header.strip("<>")))

    assert response.json()["events"][0]["message_id"] == sent.message_id
    assert (await message(database, sent.message_id)).delivered_at is not None


async def test_a_hard_bounce_suppresses_the_address_and_withdraws_consent_as_an_event(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    response = await post(hook, event(sent.message_id, "bounced", bounce="hard", at=AT))

    assert response.json()["events"][0]["outcome"] == "applied"
    assert (await message(database, sent.message_id)).bounced_at is not None
    person = await contact(database, contact_id)
    assert (person.email_consent, person.email_suppressed) == (False, "hard_bounce")
    [unsubscribed] = await consent_events(database, contact_id)
    assert unsubscribed.properties == {"channel": "email", "source": "bounce"}
    assert unsubscribed.routed_at is not None


async def test_a_soft_bounce_is_recorded_and_changes_nothing_else(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    response = await post(hook, event(sent.message_id, "bounced", bounce="soft"))

    assert response.json()["events"][0]["outcome"] == "applied"
    assert (await message(database, sent.message_id)).bounced_at is None
    person = await contact(database, contact_id)
    assert (person.email_consent, person.email_suppressed) == (True, None)
    assert await consent_events(database, contact_id) == []
    [recorded] = await engagements(database, sent.message_id)
    assert (recorded.kind, recorded.detail["bounce"]) == ("soft_bounced", "soft")


async def test_a_complaint_withdraws_consent_with_its_reason(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    await post(hook, event(sent.message_id, "complained", detail={"feedback": "abuse"}))

    assert (await message(database, sent.message_id)).complained_at is not None
    person = await contact(database, contact_id)
    assert (person.email_consent, person.email_suppressed) == (False, "complaint")
    [unsubscribed] = await consent_events(database, contact_id)
    assert unsubscribed.properties == {"channel": "email", "source": "complaint"}
    [recorded] = await engagements(database, sent.message_id)
    assert recorded.detail["feedback"] == "abuse"


async def test_a_hard_bounce_outranks_a_complaint_but_not_the_other_way_round(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    await post(hook, event(sent.message_id, "complained"))
    await post(hook, event(sent.message_id, "bounced", bounce="hard"))
    await post(hook, event(sent.message_id, "complained"))

    assert (await contact(database, contact_id)).email_suppressed == "hard_bounce"
    # Consent changed once: one event, whatever followed.
    assert len(await consent_events(database, contact_id)) == 1


async def test_unknown_messages_are_ignored_per_event_and_the_rest_applies(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    unknown = event("journey:nope:c-0:run:step", "bounced", bounce="hard")
    header = event("<nobody@shop.example.com>")

    response = await post(hook, unknown, event(sent.message_id), header)

    assert response.status_code == 200
    assert [(e["outcome"], e["reason"]) for e in response.json()["events"]] == [
        ("ignored", "unknown message"),
        ("applied", None),
        ("ignored", "unknown message"),
    ]


async def test_feedback_on_an_sms_is_ignored(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sms = await sent_email(database, contact_id, channel="sms")

    response = await post(hook, event(sms.message_id, "bounced", bounce="hard"))

    assert response.json()["events"][0]["reason"] == "not an email"
    assert (await contact(database, contact_id)).email_consent is True


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic ZmVlZGJhY2stdGVzdC1zZWNyZXQ="},
        {"Authorization": "Bearer test-key"},  # the API key is not the feedback secret
        {"Authorization": "Bearer"},
    ],
)
async def test_without_the_feedback_secret_it_is_401_and_nothing_changes(
    hook: httpx.AsyncClient, database: Database, contact_id: str, headers: dict[str, str]
) -> None:
    sent = await sent_email(database, contact_id)

    response = await hook.post(
        WEBHOOK,
        json={"events": [event(sent.message_id, "bounced", bounce="hard")]},
        headers=headers,
    )

    assert response.status_code == 401
    assert "detail" in response.json()
    assert (await contact(database, contact_id)).email_consent is True
    assert await engagements(database, sent.message_id) == []


async def test_production_refuses_the_dev_secret(
    database: Database, settings: Settings, dev_env: WorkflowEnvironment, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    production = settings.model_copy(
        update={"env": "production", "feedback_secret": DEV_FEEDBACK_SECRET}
    )
    async with client_of(create_app(production, client=dev_env.client, database=database)) as c:
        response = await c.post(
            WEBHOOK,
            json={"events": [event(sent.message_id)]},
            headers={"Authorization": f"Bearer {DEV_FEEDBACK_SECRET}"},
        )
    assert response.status_code == 401
    assert "not set" in response.json()["detail"]
    assert await engagements(database, sent.message_id) == []


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"events": 1}', b'{"events": []}'])
async def test_without_the_secret_even_a_malformed_body_is_401_not_422(
    hook: httpx.AsyncClient, body: bytes
) -> None:
    # Authenticated before anything else is looked at: a stranger learns nothing but 401.
    response = await hook.post(WEBHOOK, content=body)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "JOURNEYMAN_FEEDBACK_SECRET" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b"{}",
        b'{"events": []}',
        b'{"events": "x"}',
        b'{"events": [{}]}',
        b'{"events": [{"id": "e1", "type": "opened", "message_id": "m"}]}',
        b'{"events": [{"id": "e1", "type": "bounced", "message_id": "m"}]}',
        b'{"events": [{"id": "e1", "type": "delivered", "message_id": "m", "bounce": "hard"}]}',
        b'{"events": [{"id": "e1", "type": "delivered", "message_id": "m", "at": "yesterday"}]}',
        b'{"events": [{"id": "e1", "type": "delivered", "message_id": "m", "detail": NaN}]}',
        b'{"events": [{"id": "e1", "type": "delivered", "message_id": "m\\u0000"}]}',
        b'{"events": [{"id": "e 1", "type": "delivered", "message_id": "m"}]}',
        b'{"events": [{"id": "e1", "type": "delivered", "message_id": "m", "extra": 1}]}',
        b'{"events": [], "signature": {}}',
        b'"events"',
        b"null",
    ],
)
async def test_malformed_bodies_are_4xx_json_never_500(
    hook: httpx.AsyncClient, body: bytes
) -> None:
    response = await hook.post(
        WEBHOOK, content=body, headers={**BEARER, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert "detail" in response.json()
