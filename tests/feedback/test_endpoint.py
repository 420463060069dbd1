"""The endpoint itself: where it is mounted, what it documents, how it holds under concurrency."""

from __future__ import annotations

import asyncio

import httpx

from persistence import Database

from .helpers import BEARER, WEBHOOK, consent_events, engagements, event, sent_email


async def test_it_needs_no_api_key_but_the_rest_of_v1_still_does(hook: httpx.AsyncClient) -> None:
    feedback = await hook.post(WEBHOOK, json={"events": [event("m-unknown")]}, headers=BEARER)
    events = await hook.post("/v1/events", json={}, headers=BEARER)
    contacts = await hook.get("/v1/contacts/c-1", headers=BEARER)

    assert feedback.status_code == 200
    assert (events.status_code, contacts.status_code) == (401, 401)


async def test_both_formats_are_in_the_api_docs(hook: httpx.AsyncClient) -> None:
    response = await hook.get("/openapi.json")

    assert response.status_code == 200
    operation = response.json()["paths"][WEBHOOK]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    refs = {option["$ref"].rsplit("/", 1)[-1] for option in schema["oneOf"]}
    assert refs == {"FeedbackIn", "MailgunWebhookIn"}
    assert {"200", "401", "422"} <= set(operation["responses"])


async def test_concurrent_deliveries_of_one_event_apply_it_once(
    hook: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    sent = await sent_email(database, contact_id)
    bounce = {"events": [event(sent.message_id, "bounced", bounce="hard")]}

    answers = await asyncio.gather(
        *(hook.post(WEBHOOK, json=bounce, headers=BEARER) for _ in range(8))
    )

    assert {a.status_code for a in answers} == {200}
    outcomes = sorted(a.json()["events"][0]["outcome"] for a in answers)
    assert outcomes == ["applied"] + ["duplicate"] * 7
    assert len(await engagements(database, sent.message_id)) == 1
    assert len(await consent_events(database, contact_id)) == 1
