"""Signed tokens and signatures cannot be forged (another key), edited (a field flipped) or
replayed past their window.

- Links in messages (`journeyman.signing`, itsdangerous HMAC-SHA256 with a timestamp, one
  salt per purpose): unsubscribe, open pixel, click. A click token carries the message id
  and the link's index, never a URL: the redirect goes to the URL stored for that message, so
  there is no open redirect to forge. Unsubscribe links live `unsubscribe_link_max_age_days`
  (365 by default, at least 30: CAN-SPAM wants opt-outs honoured for 30 days after sending).
- Webhook signatures: ours (outbound webhook steps and the generic inbound CRM format) and
  HubSpot's v3 refuse a timestamp more than 5 minutes from now; Mailgun's, 15 minutes, and
  each Mailgun token once. The bearer feedback secret is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import zlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner
from pydantic import ValidationError

from activities.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_webhook,
    verify_webhook_signature,
)
from activities.crm import REQUEST_TIMESTAMP_HEADER, SIGNATURE_V3_HEADER
from journeyman.settings import Settings
from journeyman.signing import (
    InvalidToken,
    Signer,
    click_token,
    open_token,
    read_tracking,
)
from persistence import Contact, Database, Message
from tests.security.conftest import ADMIN_KEY, INGEST_KEY, OTHER_ADMIN_KEY

SECRET = "sec-signing-secret-5a8e1c"
CRM_SECRET = "sec-crm-webhook-secret-0c2f"
HUBSPOT_SECRET = "sec-hubspot-client-secret-77d1"
MAILGUN_KEY = "sec-mailgun-signing-key-e3b9"
FEEDBACK_SECRET = "sec-feedback-secret-41aa"
YEAR = timedelta(days=365)
DAY = 86_400


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[ADMIN_KEY, OTHER_ADMIN_KEY],
        ingest_api_keys=[INGEST_KEY],
        secret_key=SECRET,
        crm_webhook_secret=CRM_SECRET,
        hubspot_client_secret=HUBSPOT_SECRET,
        mailgun_signing_key=MAILGUN_KEY,
        feedback_secret=FEEDBACK_SECRET,
        public_url="http://journeyman.test",
    )


# ----- links in messages ---------------------------------------------------------------------


def edited(token: str, change: dict[str, Any]) -> str:
    """The token with its payload changed and its timestamp and signature kept."""
    payload, timestamp, signature = token.rsplit(".", 2)
    compressed = payload.startswith(".")
    raw = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
    data = json.loads(zlib.decompress(raw) if compressed else raw)
    data.update(change)
    encoded = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return f"{encoded.decode().rstrip('=')}.{timestamp}.{signature}"


def at(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """itsdangerous's clock, for making and reading tokens at a chosen time."""
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(seconds))


def test_a_link_token_carries_ids_never_a_url() -> None:
    token = click_token(Signer(SECRET), "msg-1", 3)
    payload = token.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert data == {"m": "msg-1", "l": 3}


@pytest.mark.parametrize(
    ("make", "read"),
    [
        (
            lambda s: s.unsubscribe_token("c-1", "email"),
            lambda s, t: s.read_unsubscribe(t, YEAR),
        ),
        (
            lambda s: open_token(s, "msg-1"),
            lambda s, t: read_tracking(s, t, click=False, max_age=YEAR),
        ),
        (
            lambda s: click_token(s, "msg-1", 0),
            lambda s, t: read_tracking(s, t, click=True, max_age=YEAR),
        ),
    ],
    ids=["unsubscribe", "open", "click"],
)
def test_link_tokens_from_another_key_are_refused(make: Any, read: Any) -> None:
    mine, theirs = Signer(SECRET), Signer("some-other-secret")
    read(mine, make(mine))  # a real one reads
    for forged in (make(theirs), make(Signer(SECRET + " ")), make(Signer(SECRET.upper()))):
        with pytest.raises(InvalidToken):
            read(mine, forged)


@pytest.mark.parametrize(
    "change",
    [{"c": "c-2"}, {"ch": "sms"}, {"c": "c-1", "ch": "push"}, {"c": "c-1", "extra": 1}],
)
def test_an_edited_unsubscribe_token_is_refused(change: dict[str, Any]) -> None:
    signer = Signer(SECRET)
    token = signer.unsubscribe_token("c-1", "email")
    assert signer.read_unsubscribe(edited(token, {}), YEAR).contact_id == "c-1"  # re-encoding
    with pytest.raises(InvalidToken):
        signer.read_unsubscribe(edited(token, change), YEAR)


@pytest.mark.parametrize(
    "change", [{"m": "msg-2"}, {"l": 1}, {"l": -1}, {"l": "https://evil.example"}, {"u": "x"}]
)
def test_an_edited_click_token_is_refused(change: dict[str, Any]) -> None:
    signer = Signer(SECRET)
    token = click_token(signer, "msg-1", 0)
    assert read_tracking(signer, edited(token, {}), click=True, max_age=YEAR).link == 0
    with pytest.raises(InvalidToken):
        read_tracking(signer, edited(token, change), click=True, max_age=YEAR)


def test_every_character_of_the_payload_and_timestamp_is_signed() -> None:
    signer = Signer(SECRET)
    token = signer.unsubscribe_token("c-1", "email")
    signed_part = token.rsplit(".", 1)[0]
    for index, char in enumerate(signed_part):
        flipped = "B" if char != "B" else "C"
        forged = token[:index] + flipped + token[index + 1 :]
        with pytest.raises(InvalidToken):
            signer.read_unsubscribe(forged, YEAR)


def test_a_token_for_one_purpose_is_refused_for_every_other() -> None:
    signer = Signer(SECRET)
    unsubscribe = signer.unsubscribe_token("msg-1", "email")
    opened, clicked = open_token(signer, "msg-1"), click_token(signer, "msg-1", 0)
    for token in (opened, clicked):
        with pytest.raises(InvalidToken):
            signer.read_unsubscribe(token, YEAR)
    for token in (unsubscribe, clicked):
        with pytest.raises(InvalidToken):
            read_tracking(signer, token, click=False, max_age=YEAR)
    for token in (unsubscribe, opened):
        with pytest.raises(InvalidToken):
            read_tracking(signer, token, click=True, max_age=YEAR)


def test_unsubscribe_links_work_for_their_whole_life_and_no_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer, sent = Signer(SECRET), 1_800_000_000
    max_age = timedelta(days=Settings().unsubscribe_link_max_age_days)
    at(monkeypatch, sent)
    token = signer.unsubscribe_token("c-1", "email")
    for days in (0, 30, 31, 364):  # CAN-SPAM: at least 30 days after sending
        at(monkeypatch, sent + days * DAY)
        assert signer.read_unsubscribe(token, max_age).contact_id == "c-1"
    at(monkeypatch, sent + 366 * DAY)
    with pytest.raises(InvalidToken, match="expired"):
        signer.read_unsubscribe(token, max_age)
    # A timestamp from the future (a forged one would need the key anyway) is no good either.
    at(monkeypatch, sent - DAY)
    with pytest.raises(InvalidToken):
        signer.read_unsubscribe(token, max_age)


def test_unsubscribe_links_cannot_be_configured_below_thirty_days() -> None:
    Settings(unsubscribe_link_max_age_days=30)
    with pytest.raises(ValidationError, match="30"):
        Settings(unsubscribe_link_max_age_days=29)


def test_tracking_links_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    signer, sent = Signer(SECRET), 1_800_000_000
    at(monkeypatch, sent)
    token = click_token(signer, "msg-1", 0)
    at(monkeypatch, sent + 11 * DAY)
    with pytest.raises(InvalidToken, match="expired"):
        read_tracking(signer, token, click=True, max_age=timedelta(days=10))


async def stored_message(database: Database, links: list[str]) -> str:
    contact_id, message_id = f"c-{uuid.uuid4().hex[:10]}", f"msg-{uuid.uuid4().hex}"
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        session.add(
            Message(
                message_id=message_id,
                workflow_id=f"journey:welcome_series:{contact_id}",
                run_id=str(uuid.uuid4()),
                journey="welcome_series",
                step="welcome",
                contact_id=contact_id,
                channel="email",
                template="welcome_series/welcome",
                status="sent",
                to_address="ada@example.com",
                links=links,
            )
        )
        await session.commit()
    return message_id


async def test_a_click_redirects_only_to_the_stored_link(
    anonymous: httpx.AsyncClient, database: Database
) -> None:
    message_id = await stored_message(database, ["https://shop.example.com/a"])
    mine, theirs = Signer(SECRET), Signer("other")

    good = await anonymous.get(f"/t/c/{click_token(mine, message_id, 0)}")
    assert (good.status_code, good.headers["location"]) == (302, "https://shop.example.com/a")

    for token, code in [
        (click_token(theirs, message_id, 0), 400),  # forged
        (edited(click_token(mine, message_id, 0), {"l": 1}), 400),  # edited
        (click_token(mine, message_id, 1), 404),  # well signed, no such link
        (click_token(mine, "msg-nope", 0), 404),  # well signed, no such message
        (open_token(mine, message_id), 400),  # another purpose
    ]:
        answer = await anonymous.get(f"/t/c/{token}")
        assert answer.status_code == code, answer.text
        assert "location" not in answer.headers
        assert "detail" in answer.json()


async def test_unsubscribe_pages_refuse_forged_and_edited_links(
    anonymous: httpx.AsyncClient, database: Database
) -> None:
    async with database.session() as session:
        session.add(Contact(contact_id="c-sec-unsub", email="u@example.com"))
        await session.commit()
    mine = Signer(SECRET)
    for token in (
        Signer("other").unsubscribe_token("c-sec-unsub", "email"),
        edited(mine.unsubscribe_token("c-sec-other", "email"), {"c": "c-sec-unsub"}),
    ):
        answer = await anonymous.post(f"/u/{token}")
        assert answer.status_code == 400, answer.text
    async with database.session() as session:
        person = await session.get(Contact, "c-sec-unsub", populate_existing=True)
    assert person is not None and person.email_consent


# ----- webhook signatures --------------------------------------------------------------------


@pytest.mark.parametrize("skew", [-360, 360, -3600, 10 * 365 * DAY])
def test_our_webhook_signatures_expire_after_five_minutes(skew: int) -> None:
    body, now = b'{"x":1}', int(time.time())
    fresh = str(now)
    assert verify_webhook_signature(CRM_SECRET, fresh, body, sign_webhook(CRM_SECRET, fresh, body))
    stamp = str(now + skew)
    assert not verify_webhook_signature(
        CRM_SECRET, stamp, body, sign_webhook(CRM_SECRET, stamp, body)
    )


def test_our_webhook_signatures_cover_body_timestamp_and_key() -> None:
    body, stamp = b'{"contact_id":"c-1"}', str(int(time.time()))
    signature = sign_webhook(CRM_SECRET, stamp, body)
    assert not verify_webhook_signature(CRM_SECRET, stamp, b'{"contact_id":"c-2"}', signature)
    assert not verify_webhook_signature(CRM_SECRET, str(int(stamp) - 1), body, signature)
    assert not verify_webhook_signature("other", stamp, body, signature)
    assert not verify_webhook_signature(CRM_SECRET, stamp, body, sign_webhook("other", stamp, body))


def generic_crm(secret: str, body: bytes, signed_at: float) -> dict[str, str]:
    stamp = str(int(signed_at))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign_webhook(secret, stamp, body),
    }


def hubspot(secret: str, body: bytes, signed_at_ms: int, uri: str) -> dict[str, str]:
    source = b"POST" + uri.encode() + body + str(signed_at_ms).encode()
    digest = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        REQUEST_TIMESTAMP_HEADER: str(signed_at_ms),
        SIGNATURE_V3_HEADER: digest.decode(),
    }


CRM_URL = "/v1/webhooks/crm"
HUBSPOT_URI = "http://journeyman.test/v1/webhooks/crm"


async def test_crm_webhooks_refuse_forged_edited_and_stale_signatures(
    anonymous: httpx.AsyncClient,
) -> None:
    body = json.dumps({"events": []}).encode()
    now = time.time()
    ok = await anonymous.post(CRM_URL, content=body, headers=generic_crm(CRM_SECRET, body, now))
    assert ok.status_code == 200, ok.text
    hub = json.dumps([]).encode()
    ms = int(now * 1000)
    ok = await anonymous.post(
        CRM_URL, content=hub, headers=hubspot(HUBSPOT_SECRET, hub, ms, HUBSPOT_URI)
    )
    assert ok.status_code == 200, ok.text

    other = json.dumps({"events": [{"id": "x"}]}).encode()
    refused = [
        (body, generic_crm("other", body, now)),  # forged
        (other, generic_crm(CRM_SECRET, body, now)),  # edited
        (body, generic_crm(CRM_SECRET, body, now - 360)),  # replayed after the window
        (body, generic_crm(CRM_SECRET, body, now + 360)),
        (hub, hubspot("other", hub, ms, HUBSPOT_URI)),
        (b"[{}]", hubspot(HUBSPOT_SECRET, hub, ms, HUBSPOT_URI)),
        (hub, hubspot(HUBSPOT_SECRET, hub, ms, "http://evil.example/v1/webhooks/crm")),
        # HubSpot's own rule: refuse a timestamp older than 5 minutes.
        (hub, hubspot(HUBSPOT_SECRET, hub, ms - 360_000, HUBSPOT_URI)),
    ]
    for content, headers in refused:
        answer = await anonymous.post(CRM_URL, content=content, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)


def mailgun(key: str, stamp: int, token: str) -> dict[str, Any]:
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(stamp), "token": token, "signature": signature},
        "event-data": {
            "event": "delivered",
            "id": uuid.uuid4().hex[:22],
            "timestamp": time.time(),
            "recipient": "ada@example.com",
            "message": {"headers": {"message-id": "nobody@shop.example.com"}},
        },
    }


async def test_mailgun_webhooks_refuse_forged_stale_and_replayed_signatures(
    anonymous: httpx.AsyncClient,
) -> None:
    url, now = "/v1/webhooks/email", int(time.time())
    body = mailgun(MAILGUN_KEY, now, uuid.uuid4().hex)
    first = await anonymous.post(url, json=body)
    assert first.status_code == 200, first.text
    replayed = await anonymous.post(url, json=body)
    assert replayed.status_code == 401
    assert "replay" in replayed.json()["detail"]

    for forged in (
        mailgun("other", now, uuid.uuid4().hex),
        mailgun(MAILGUN_KEY, now - 960, uuid.uuid4().hex),
        mailgun(MAILGUN_KEY, now + 960, uuid.uuid4().hex),
    ):
        answer = await anonymous.post(url, json=forged)
        assert answer.status_code == 401, answer.text
    edited_body = mailgun(MAILGUN_KEY, now, uuid.uuid4().hex)
    edited_body["signature"]["token"] = uuid.uuid4().hex
    assert (await anonymous.post(url, json=edited_body)).status_code == 401


async def test_the_feedback_format_wants_the_exact_secret(anonymous: httpx.AsyncClient) -> None:
    url, body = "/v1/webhooks/email", {"events": list[Any]()}
    good = await anonymous.post(
        url, json=body, headers={"Authorization": f"Bearer {FEEDBACK_SECRET}"}
    )
    assert good.status_code == 422, good.text  # past the secret: the empty batch is refused
    for given in (
        "other",
        FEEDBACK_SECRET[:-1],
        FEEDBACK_SECRET + "x",
        ADMIN_KEY,
        "dev-feedback-secret",
    ):
        answer = await anonymous.post(url, json=body, headers={"Authorization": f"Bearer {given}"})
        assert answer.status_code == 401, given
