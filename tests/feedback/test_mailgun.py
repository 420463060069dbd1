"""Mailgun's event webhooks: its body, its signature (HMAC-SHA256 of timestamp + token with the
signing key), a freshness window, and each token honoured once."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.feedback import mailgun_signature
from journeyman.settings import Settings
from persistence import Database

from .helpers import (
    MAILGUN_KEY,
    WEBHOOK,
    client_of,
    consent_events,
    contact,
    engagements,
    mailgun_body,
    message,
    sent_email,
    sign,
)

NOWHERE = "127.0.0.1:1"  # no Temporal here: routing fails with a 503


def test_the_signature_is_mailguns_published_scheme() -> None:
    # Computed independently: printf '<timestamp><token>' | openssl dgst -sha256 -hmac key
    assert (
        mailgun_signature(
            "key-example", "1770920772", "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"
        )
        == "0c21522907603dce041a944f1414670fff4a064f6d03b9ac00aca444d434cc50"
    )


async def test_delivered_is_matched_by_the_message_id_header_without_brackets(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    body = mailgun_body(sent, "delivered")

    response = await hook.post(WEBHOOK, json=body)

    assert response.status_code == 200, response.text
    [outcome] = response.json()["events"]
    assert outcome == {
        "id": body["event-data"]["id"],
        "outcome": "applied",
        "message_id": sent.message_id,
        "reason": None,
    }
    assert (await message(database, sent.message_id)).delivered_at is not None
    [recorded] = await engagements(database, sent.message_id)
    assert recorded.source_id == f"mailgun:{body['event-data']['id']}"


async def test_a_permanent_failure_is_a_hard_bounce(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    body = mailgun_body(sent, "failed", severity="permanent", reason="bounce")
    body["event-data"]["delivery-status"] = {"code": 550, "message": "No such user", "tls": True}

    response = await hook.post(WEBHOOK, json=body)

    assert response.json()["events"][0]["outcome"] == "applied"
    assert (await message(database, sent.message_id)).bounced_at is not None
    person = await contact(database, contact_id)
    assert (person.email_consent, person.email_suppressed) == (False, "hard_bounce")
    [unsubscribed] = await consent_events(database, contact_id)
    assert unsubscribed.properties["source"] == "bounce"
    [recorded] = await engagements(database, sent.message_id)
    assert recorded.detail == {
        "provider": "mailgun",
        "type": "bounced",
        "bounce": "hard",
        "reason": "bounce",
        "code": 550,
        "message": "No such user",
    }


async def test_a_temporary_failure_is_recorded_only(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    await hook.post(WEBHOOK, json=mailgun_body(sent, "failed", severity="temporary"))

    assert (await message(database, sent.message_id)).bounced_at is None
    assert (await contact(database, contact_id)).email_consent is True
    assert [e.kind for e in await engagements(database, sent.message_id)] == ["soft_bounced"]


async def test_a_complaint_withdraws_consent(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    await hook.post(WEBHOOK, json=mailgun_body(sent, "complained"))

    assert (await message(database, sent.message_id)).complained_at is not None
    assert (await contact(database, contact_id)).email_suppressed == "complaint"


async def test_other_mailgun_events_and_unknown_messages_are_accepted_and_ignored(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    opened = mailgun_body(sent, "opened")
    stranger = mailgun_body(sent, "delivered")
    stranger["event-data"]["message"]["headers"]["message-id"] = "x@elsewhere.example"
    no_header = mailgun_body(sent, "delivered")
    del no_header["event-data"]["message"]

    answers = [await hook.post(WEBHOOK, json=body) for body in (opened, stranger, no_header)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["events"][0]["reason"] for a in answers] == [
        "unsupported event 'opened'",
        "unknown message",
        "unknown message",
    ]
    assert await engagements(database, sent.message_id) == []


async def test_the_same_event_under_a_new_signature_is_a_duplicate(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    first = mailgun_body(sent, "failed", severity="permanent")
    again = mailgun_body(sent, "failed", severity="permanent")
    again["event-data"] = first["event-data"]

    answers = [await hook.post(WEBHOOK, json=body) for body in (first, again)]

    assert [a.json()["events"][0]["outcome"] for a in answers] == ["applied", "duplicate"]
    assert len(await engagements(database, sent.message_id)) == 1
    assert len(await consent_events(database, contact_id)) == 1


def _resign(body: dict[str, Any], **signature: str) -> dict[str, Any]:
    return {**body, "signature": {**body["signature"], **signature}}


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda b: _resign(b, signature="0" * 64), id="wrong-signature"),
        pytest.param(lambda b: _resign(b, signature=""), id="empty-signature"),
        pytest.param(lambda b: _resign(b, signature="é" * 64), id="non-ascii-signature"),
        pytest.param(lambda b: _resign(b, token=b["signature"]["token"] + "x"), id="edited-token"),
        pytest.param(
            lambda b: _resign(b, timestamp=str(int(b["signature"]["timestamp"]) + 1)),
            id="edited-timestamp",
        ),
    ],
)
async def test_a_bad_signature_is_401_and_changes_nothing(
    hook: httpx.AsyncClient, database: Database, contact_id: str, forge: Any
) -> None:
    sent = await sent_email(database, contact_id)

    response = await hook.post(
        WEBHOOK, json=forge(mailgun_body(sent, "failed", severity="permanent"))
    )

    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    assert (await contact(database, contact_id)).email_consent is True
    assert await engagements(database, sent.message_id) == []


@pytest.mark.parametrize(
    "signature",
    [
        "x",
        [],
        {"timestamp": "soon", "token": "t", "signature": "s"},
        {"timestamp": "1", "token": "", "signature": "s"},
        {"timestamp": 1, "token": "t", "signature": "s"},
        {"token": "t", "signature": "s"},
    ],
)
async def test_a_malformed_signature_is_401(hook: httpx.AsyncClient, signature: Any) -> None:
    response = await hook.post(WEBHOOK, json={"signature": signature, "event-data": {}})

    assert response.status_code == 401
    assert "malformed Mailgun signature" in response.json()["detail"]


async def test_a_signature_with_another_key_is_401(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)

    response = await hook.post(WEBHOOK, json=mailgun_body(sent, key="someone-elses-key"))

    assert response.status_code == 401


@pytest.mark.parametrize("offset", [-3600, 3600])
async def test_a_stale_or_future_signature_is_401(
    hook: httpx.AsyncClient, database: Database, contact_id: str, offset: int
) -> None:
    sent = await sent_email(database, contact_id)
    body = mailgun_body(sent, timestamp=int(time.time()) + offset)

    response = await hook.post(WEBHOOK, json=body)

    assert response.status_code == 401
    assert "stale" in response.json()["detail"]
    # Inside the window (900 s by default) it is fine.
    fresh = await hook.post(WEBHOOK, json=mailgun_body(sent, timestamp=int(time.time()) - 600))
    assert fresh.status_code == 200


async def test_a_replayed_token_is_401_even_with_other_event_data(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    captured = mailgun_body(sent, "delivered")
    forged = {**captured, "event-data": mailgun_body(sent, "complained")["event-data"]}

    first = await hook.post(WEBHOOK, json=captured)
    replay = await hook.post(WEBHOOK, json=captured)
    replay_forged = await hook.post(WEBHOOK, json=forged)

    assert (first.status_code, replay.status_code, replay_forged.status_code) == (200, 401, 401)
    assert "replay" in replay.json()["detail"]
    assert (await contact(database, contact_id)).email_consent is True


async def test_a_subaccounts_parent_signature_is_accepted(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    body = mailgun_body(sent, key="the-subaccounts-key")
    stamp, token = body["signature"]["timestamp"], body["signature"]["token"]
    body["signature"]["parent-signature"] = sign(MAILGUN_KEY, stamp, token)

    response = await hook.post(WEBHOOK, json=body)

    assert response.status_code == 200


async def test_without_a_signing_key_mailgun_requests_are_401(
    database: Database, settings: Settings, dev_env: WorkflowEnvironment, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    unset = settings.model_copy(update={"mailgun_signing_key": ""})
    async with client_of(create_app(unset, client=dev_env.client, database=database)) as c:
        response = await c.post(WEBHOOK, json=mailgun_body(sent))
    assert response.status_code == 401
    assert "not configured" in response.json()["detail"]


async def test_a_failed_attempt_releases_its_token_so_the_providers_retry_applies(
    hook: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    contact_id: str,
) -> None:
    sent = await sent_email(database, contact_id)
    body = mailgun_body(sent, "failed", severity="permanent")
    nowhere = settings.model_copy(update={"temporal_address": NOWHERE})
    cut_off = create_app(nowhere, database=database)
    async with client_of(cut_off) as unreachable:
        failed = await unreachable.post(WEBHOOK, json=body)
    assert failed.status_code == 503
    assert await engagements(database, sent.message_id) == []  # nothing says "done"

    retried = await hook.post(WEBHOOK, json=body)

    assert retried.json()["events"][0]["outcome"] == "applied"
    [unsubscribed] = await consent_events(database, contact_id)
    assert unsubscribed.routed_at is not None  # routed by the retry


@pytest.mark.parametrize(
    "change",
    [
        {"event-data": None},
        {"event-data": {"event": "delivered"}},
        {"event-data": {"event": "delivered", "id": "x", "timestamp": 1e300}},
        {"event-data": {"event": "failed", "id": "x", "timestamp": 1, "severity": "maybe"}},
        {"event-data": {"event": "delivered", "id": "x", "timestamp": 1, "message": 5}},
    ],
)
async def test_malformed_mailgun_bodies_are_422(
    hook: httpx.AsyncClient, database: Database, contact_id: str, change: dict[str, Any]
) -> None:
    sent = await sent_email(database, contact_id)

    response = await hook.post(WEBHOOK, json={**mailgun_body(sent), **change})

    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
