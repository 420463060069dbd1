"""The local HubSpot answers as the documented API does, so the connector tests mean something."""

from __future__ import annotations

import httpx

from .fake_hubspot import TOKEN, FakeHubSpot

AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def upsert_input(email: str, **properties: object) -> dict[str, object]:
    return {"id": email, "idProperty": "email", "properties": properties}


def traced(inputs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Opt in to multi-status answers: a unique objectWriteTraceId per input."""
    return [{**one, "objectWriteTraceId": f"t-{n}"} for n, one in enumerate(inputs)]


async def test_upsert_creates_then_updates(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    url = hubspot.url + UPSERT
    body = {"inputs": [upsert_input("Ada@Example.com", journeyman_score=42)]}
    first = await http.post(url, json=body, headers=AUTH)
    assert first.status_code == 200
    created = first.json()["results"][0]
    assert first.json()["status"] == "COMPLETE"
    assert created["new"] is True and created["archived"] is False
    assert created["properties"]["journeyman_score"] == "42"

    body = {"inputs": [upsert_input("ada@example.com", journeyman_qualified=True)]}
    second = (await http.post(url, json=body, headers=AUTH)).json()["results"][0]
    assert second["id"] == created["id"] and second["new"] is False
    stored = hubspot.contact("ada@example.com")
    assert stored is not None
    assert stored.properties["journeyman_score"] == "42"
    assert stored.properties["journeyman_qualified"] == "true"


async def test_partial_errors_are_a_207(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    inputs = [
        upsert_input("ok@example.com"),
        upsert_input("not-an-email"),
        upsert_input("x@example.com", no_such_property="1"),
    ]
    untraced = await http.post(hubspot.url + UPSERT, json={"inputs": inputs}, headers=AUTH)
    assert untraced.status_code == 400
    assert "INVALID_EMAIL" in untraced.json()["message"]
    assert hubspot.contacts == {}

    answer = await http.post(hubspot.url + UPSERT, json={"inputs": traced(inputs)}, headers=AUTH)
    assert answer.status_code == 207
    body = answer.json()
    assert [one["properties"]["email"] for one in body["results"]] == ["ok@example.com"]
    assert body["numErrors"] == 2
    assert [error["context"]["ids"] for error in body["errors"]] == [
        ["not-an-email"],
        ["x@example.com"],
    ]
    assert [error["context"]["objectWriteTraceId"] for error in body["errors"]] == [
        ["t-1"],
        ["t-2"],
    ]
    assert body["results"][0]["objectWriteTraceId"] == "t-0"
    assert all(error["category"] == "VALIDATION_ERROR" for error in body["errors"])
    assert list(hubspot.contacts) == ["ok@example.com"]


async def test_more_than_100_inputs_is_a_400(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    inputs = [upsert_input(f"c{n}@example.com") for n in range(101)]
    answer = await http.post(hubspot.url + UPSERT, json={"inputs": inputs}, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert hubspot.contacts == {}


async def test_bad_token_and_injected_failures(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    body = {"inputs": [upsert_input("ada@example.com")]}
    refused = await http.post(
        hubspot.url + UPSERT, json=body, headers={"Authorization": "Bearer x"}
    )
    assert refused.status_code == 401
    assert refused.json()["category"] == "INVALID_AUTHENTICATION"

    hubspot.fail_next(1, status=429, retry_after="3")
    limited = await http.post(hubspot.url + UPSERT, json=body, headers=AUTH)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["errorType"] == "RATE_LIMIT"
    assert limited.json()["policyName"] == "SECONDLY"
    assert (await http.post(hubspot.url + UPSERT, json=body, headers=AUTH)).status_code == 200

    hubspot.outage = True
    assert (await http.post(hubspot.url + UPSERT, json=body, headers=AUTH)).status_code == 503
    assert len(hubspot.calls("/batch/upsert")) == 4


async def test_task_needs_a_known_contact(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    contact = hubspot.add_contact("ada@example.com")
    task = {
        "properties": {"hs_timestamp": "2026-03-01T09:00:00Z", "hs_task_subject": "Call Ada"},
        "associations": [
            {
                "to": {"id": contact.id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}],
            }
        ],
    }
    created = await http.post(hubspot.url + "/crm/v3/objects/tasks", json=task, headers=AUTH)
    assert created.status_code == 201
    stored = hubspot.tasks[created.json()["id"]]
    assert stored.contact_ids == [contact.id]

    task["associations"][0]["to"] = {"id": "999999"}  # type: ignore[index]
    missing = await http.post(hubspot.url + "/crm/v3/objects/tasks", json=task, headers=AUTH)
    assert missing.status_code == 400


async def test_notes_associate_with_type_202(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    contact = hubspot.add_contact("ada@example.com")
    note = {
        "properties": {"hs_timestamp": "2026-03-01T09:00:00Z", "hs_note_body": "Qualified"},
        "associations": [
            {
                "to": {"id": contact.id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
            }
        ],
    }
    created = await http.post(hubspot.url + "/crm/v3/objects/notes", json=note, headers=AUTH)
    assert created.status_code == 201
    assert hubspot.notes[created.json()["id"]].contact_ids == [contact.id]

    note["associations"][0]["types"][0]["associationTypeId"] = 204  # type: ignore[index]
    wrong = await http.post(hubspot.url + "/crm/v3/objects/notes", json=note, headers=AUTH)
    assert wrong.status_code == 400
