"""`POST /v1/webhooks/crm`: signatures, the newer-wins rule, idempotency, and a lifecycle
change to `customer` starting the onboarding journey like an event."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from activities.crm_sync import CrmSyncActivities
from journeyman.crm.contracts import PushRequest
from journeyman.settings import Settings
from persistence import Contact, CrmFieldState, Database, EventRecord
from persistence.models import as_utc, utcnow
from tests.api.helpers import SentMessages
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import WINDOW, email_of
from tests.crm_sync.helpers import local_change
from tests.support import capturing_worker, running_app

URL = "/v1/webhooks/crm"


@pytest.fixture
async def sent(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    async with capturing_worker(dev_env.client, database, settings) as captured:
        yield captured


@pytest.fixture
async def crm(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings, sent: SentMessages
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app with no API key: the CRM has none."""
    async with (
        running_app(settings, dev_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
        ) as client,
    ):
        yield client


def generic(
    secret: str, events: list[dict[str, Any]], *, signed_at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"events": events}).encode()
    timestamp = str(int(signed_at if signed_at is not None else time.time()))
    return body, {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign_webhook(secret, timestamp, body),
    }


def change(event_id: str, contact_id: str, occurred_at: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "contact_id": contact_id,
        "changes": changes,
        "occurred_at": occurred_at.isoformat(),
    }


async def contact_row(database: Database, contact_id: str) -> Contact:
    async with database.session() as session:
        contact = await session.get(Contact, contact_id, populate_existing=True)
    assert contact is not None
    return contact


async def post(crm: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await crm.post(URL, content=body, headers=headers)


async def test_a_signed_change_updates_pulled_fields_only(
    crm: httpx.AsyncClient, database: Database, settings: Settings, contact_id: str
) -> None:
    await local_change(database, contact_id, at=utcnow() - timedelta(hours=1), phone="+1")
    body, headers = generic(
        settings.crm_webhook_secret,
        [
            change(
                "evt-1",
                contact_id,
                utcnow(),
                phone="+44 20 7946 0000",
                firstname="Ada",
                hubspot_owner_id="77",
                journeyman_score=99,
                favourite_colour="teal",
            )
        ],
    )
    response = await post(crm, body, headers)
    assert response.status_code == 200, response.text
    outcomes = {item["field"]: item["outcome"] for item in response.json()["changes"]}
    assert outcomes == {
        "phone": "applied",
        "attributes.first_name": "applied",
        "attributes.hubspot_owner_id": "applied",
        "score": "not_pulled",
        "favourite_colour": "unmapped_field",
    }
    contact = await contact_row(database, contact_id)
    assert contact.phone == "+44 20 7946 0000"
    assert contact.attributes == {"first_name": "Ada", "hubspot_owner_id": "77"}
    async with database.session() as session:
        state = await session.get(CrmFieldState, (contact_id, "phone"), populate_existing=True)
    assert state is not None and state.source == "crm"


@pytest.mark.parametrize("problem", ["unsigned", "wrong_secret", "stale", "tampered"])
async def test_a_bad_signature_is_refused_before_the_body_is_read(
    crm: httpx.AsyncClient, database: Database, settings: Settings, contact_id: str, problem: str
) -> None:
    await local_change(database, contact_id, at=utcnow() - timedelta(hours=1), phone="+1")
    events = [change("evt-bad", contact_id, utcnow(), phone="+666")]
    secret = "not-the-secret" if problem == "wrong_secret" else settings.crm_webhook_secret
    signed_at = time.time() - 3600 if problem == "stale" else None
    body, headers = generic(secret, events, signed_at=signed_at)
    if problem == "unsigned":
        headers = {"Content-Type": "application/json"}
    if problem == "tampered":
        body = body.replace(b"+666", b"+667")
    response = await post(crm, body, headers)
    assert response.status_code == 401, response.text
    assert "signature" in response.json()["detail"]
    assert (await contact_row(database, contact_id)).phone == "+1"


async def test_an_authentic_but_malformed_body_is_422(
    crm: httpx.AsyncClient, settings: Settings
) -> None:
    body, headers = generic(settings.crm_webhook_secret, [{"id": "evt-x", "changes": {}}])
    response = await post(crm, body, headers)
    assert response.status_code == 422, response.text
    assert "contact_id" in response.json()["detail"]


async def test_a_redelivered_change_is_applied_once(
    crm: httpx.AsyncClient, database: Database, settings: Settings, contact_id: str
) -> None:
    await local_change(database, contact_id, at=utcnow() - timedelta(hours=2), phone="+1")
    events = [change("evt-dup", contact_id, utcnow() - timedelta(hours=1), phone="+2")]
    body, headers = generic(settings.crm_webhook_secret, events)
    first = await post(crm, body, headers)
    assert first.json()["changes"][0]["outcome"] == "applied"
    # Journeyman changes it afterwards; the redelivery must not put the CRM's value back.
    await local_change(database, contact_id, at=utcnow(), phone="+3")
    again = await post(crm, body, headers)
    assert again.status_code == 200
    assert again.json()["changes"][0]["outcome"] == "duplicate"
    assert (await contact_row(database, contact_id)).phone == "+3"


async def test_a_change_older_than_the_local_one_is_ignored(
    crm: httpx.AsyncClient, database: Database, settings: Settings, contact_id: str
) -> None:
    changed_here = utcnow()
    await local_change(database, contact_id, at=changed_here, attributes={"company": "Ours"})
    events = [
        change("evt-old", contact_id, changed_here - timedelta(seconds=1), company="Theirs"),
        change("evt-unknown", f"{contact_id}-nobody", changed_here, company="X"),
    ]
    body, headers = generic(settings.crm_webhook_secret, events)
    response = await post(crm, body, headers)
    assert [item["outcome"] for item in response.json()["changes"]] == [
        "older_than_local",
        "unknown_contact",
    ]
    assert (await contact_row(database, contact_id)).attributes["company"] == "Ours"
    # A newer CRM change wins over the local one.
    body, headers = generic(
        settings.crm_webhook_secret,
        [change("evt-new", contact_id, changed_here + timedelta(seconds=1), company="Theirs")],
    )
    assert (await post(crm, body, headers)).json()["changes"][0]["outcome"] == "applied"
    assert (await contact_row(database, contact_id)).attributes["company"] == "Theirs"


async def test_becoming_a_customer_in_hubspot_starts_onboarding_and_is_not_echoed(
    crm: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    sync: CrmSyncActivities,
    hubspot: FakeHubSpot,
    contact_id: str,
) -> None:
    # The contact reached HubSpot through a push, so HubSpot knows it by its id.
    start = utcnow() - WINDOW
    await local_change(
        database, contact_id, at=start, email=email_of(contact_id), lifecycle_stage="lead"
    )
    await sync.push_due(PushRequest(now=utcnow()))
    stored = hubspot.contact(email_of(contact_id))
    assert stored is not None
    occurred = utcnow()
    event = {
        "eventId": 4242,
        "subscriptionId": 1,
        "portalId": 99,
        "appId": 7,
        "occurredAt": int(occurred.timestamp() * 1000),
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": int(stored.id),
        "propertyName": "lifecyclestage",
        "propertyValue": "customer",
        "changeSource": "CRM_UI",
    }
    body, headers = hubspot.signed_webhook(
        f"{settings.public_url}{URL}", [event], timestamp_ms=int(time.time() * 1000)
    )
    response = await post(crm, body, headers)
    assert response.status_code == 200, response.text
    [answer] = response.json()["changes"]
    event_id = f"crm:hubspot:4242:{stored.id}:lifecyclestage"
    assert answer["outcome"] == "applied" and answer["event"] == event_id
    assert [(j["journey"], j["action"]) for j in answer["journeys"]] == [("onboarding", "started")]
    assert (await contact_row(database, contact_id)).lifecycle_stage == "customer"
    async with database.session() as session:
        record = await session.get(EventRecord, event_id)
    assert record is not None and record.name == "lifecycle.customer"
    assert record.contact_id == contact_id and record.routed_at is not None
    assert as_utc(record.occurred_at) == occurred.replace(
        microsecond=occurred.microsecond // 1000 * 1000
    )
    # HubSpot retries the webhook: nothing changes, no second event.
    again = await post(crm, body, headers)
    assert again.json()["changes"][0]["outcome"] == "duplicate"
    # The stage came from HubSpot: the next push does not send it back.
    await local_change(database, contact_id, at=utcnow() - WINDOW, phone="+1")
    await sync.push_due(PushRequest(now=utcnow()))
    last = hubspot.calls("/batch/upsert")[-1].json["inputs"][0]["properties"]
    assert "lifecyclestage" not in last and last["phone"] == "+1"


async def test_hubspot_webhooks_are_refused_without_a_client_secret(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings, hubspot: FakeHubSpot
) -> None:
    no_secret = settings.model_copy(update={"hubspot_client_secret": ""})
    body, headers = hubspot.signed_webhook(
        f"{settings.public_url}{URL}", [], timestamp_ms=int(time.time() * 1000)
    )
    async with (
        running_app(no_secret, dev_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
        ) as client,
    ):
        response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert "CLIENT_SECRET" in response.json()["detail"]
