"""The HubSpot connector against the local HubSpot: what the CRM ends up holding, and how
each kind of failure is sorted for the sync's retries."""

from __future__ import annotations

import socket

import httpx
import pytest

from activities.crm import (
    CrmConnector,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
)
from tests.channels.provider import HANG, FakeProvider

from .fake_hubspot import FakeHubSpot
from .helpers import contact, hubspot_connector, task_request

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


async def test_batch_upsert_by_email_with_custom_properties(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector: CrmConnector = hubspot_connector(hubspot, http)
    contacts = [contact(1), contact(2, email="Lead2@Example.COM"), contact(3)]
    outcomes = await connector.upsert_contacts(contacts)

    (call,) = hubspot.calls(UPSERT)
    assert call.headers["authorization"] == f"Bearer {hubspot.token}"
    assert [one["idProperty"] for one in call.json["inputs"]] == ["email"] * 3
    # Unique trace ids opt in to 207 answers: one bad input does not fail the batch.
    assert [one["objectWriteTraceId"] for one in call.json["inputs"]] == ["c-1", "c-2", "c-3"]
    by_id = {outcome.contact_id: outcome for outcome in outcomes}
    for n in (1, 2, 3):
        stored = hubspot.contact(f"lead{n}@example.com")
        assert stored is not None
        assert by_id[f"c-{n}"].crm_id == stored.id
        assert by_id[f"c-{n}"].error is None
        assert stored.properties["journeyman_score"] == str(50 + n)
        assert stored.properties["lifecyclestage"] == "lead"


async def test_a_second_upsert_updates_the_same_record(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    existing = hubspot.add_contact("lead1@example.com", firstname="Ada", journeyman_score="10")
    changed = contact(1, properties={"journeyman_score": 64, "journeyman_qualified": True})
    (outcome,) = await connector.upsert_contacts([changed])
    assert outcome.crm_id == existing.id
    stored = hubspot.contact("lead1@example.com")
    assert stored is not None
    # Only the pushed properties change; what sales typed stays.
    assert stored.properties["firstname"] == "Ada"
    assert stored.properties["journeyman_score"] == "64"
    assert stored.properties["journeyman_qualified"] == "true"
    assert len(hubspot.contacts) == 1


async def test_numbers_go_as_json_numbers(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    connector = hubspot_connector(hubspot, http)
    (outcome,) = await connector.upsert_contacts(
        [contact(1, properties={"journeyman_score": 1e-05})]
    )
    assert outcome.error is None
    (call,) = hubspot.calls(UPSERT)
    assert call.json["inputs"][0]["properties"]["journeyman_score"] == 1e-05
    (refused,) = await connector.upsert_contacts(
        [contact(1, properties={"journeyman_score": "5,333"})]
    )
    assert refused.error is not None and refused.error.startswith("INVALID_INTEGER")


async def test_none_clears_a_property(hubspot: FakeHubSpot, http: httpx.AsyncClient) -> None:
    hubspot.add_contact("lead1@example.com", company="Acme")
    connector = hubspot_connector(hubspot, http)
    await connector.upsert_contacts([contact(1, properties={"company": None})])
    stored = hubspot.contact("lead1@example.com")
    assert stored is not None and stored.properties["company"] == ""


async def test_at_most_max_batch_contacts_per_call(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    assert connector.max_batch == 100
    with pytest.raises(ValueError, match="101 contacts"):
        await connector.upsert_contacts([contact(n) for n in range(101)])
    assert hubspot.requests == []

    outcomes = await connector.upsert_contacts([contact(n) for n in range(100)])
    assert len(hubspot.calls(UPSERT)) == 1
    assert len(hubspot.contacts) == 100
    assert all(outcome.crm_id and outcome.error is None for outcome in outcomes)


async def test_the_same_contact_twice_is_a_caller_bug(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="appears twice"):
        await hubspot_connector(hubspot, http).upsert_contacts([contact(1), contact(1)])
    assert hubspot.requests == []


async def test_a_smaller_batch_size_from_settings_caps_the_call(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http, max_batch=2)
    with pytest.raises(ValueError):
        await connector.upsert_contacts([contact(n) for n in range(3)])


async def test_per_contact_validation_errors_reach_their_contacts(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    outcomes = await connector.upsert_contacts(
        [
            contact(1),
            contact(2, email="not-an-email"),
            contact(3, properties={"favourite_colour": "teal"}),
            contact(4, properties={"lifecyclestage": "champion"}),
        ]
    )
    by_id = {outcome.contact_id: outcome for outcome in outcomes}
    assert by_id["c-1"].error is None and by_id["c-1"].crm_id is not None
    assert by_id["c-2"].crm_id is None
    assert by_id["c-2"].error is not None and by_id["c-2"].error.startswith("INVALID_EMAIL: ")
    assert by_id["c-3"].error is not None
    assert by_id["c-3"].error.startswith("PROPERTY_DOESNT_EXIST: ")
    assert "favourite_colour" in by_id["c-3"].error
    assert by_id["c-4"].error is not None and by_id["c-4"].error.startswith("INVALID_OPTION: ")
    assert list(hubspot.contacts) == ["lead1@example.com"]


async def test_contacts_without_email_or_with_a_shared_one_are_not_sent(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    (alone,) = await connector.upsert_contacts([contact(1, email=None, crm_id="1234")])
    assert alone.error == "no_email"
    assert hubspot.requests == []

    outcomes = await connector.upsert_contacts(
        [contact(1), contact(2, email=" LEAD1@example.com "), contact(3, email="  ")]
    )
    by_id = {outcome.contact_id: outcome for outcome in outcomes}
    assert by_id["c-1"].crm_id is not None and by_id["c-1"].error is None
    assert by_id["c-2"].error is not None and by_id["c-2"].error.startswith("duplicate_email")
    assert by_id["c-3"].error == "no_email"
    (call,) = hubspot.calls(UPSERT)
    assert [one["id"] for one in call.json["inputs"]] == ["lead1@example.com"]


async def test_429_is_rate_limited_for_as_long_as_hubspot_asks(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    hubspot.fail_next(1, status=429, retry_after="7")
    with pytest.raises(
        CrmRateLimited, match="RATE_LIMIT: You have reached your secondly limit"
    ) as err:
        await connector.upsert_contacts([contact(1)])
    assert err.value.retry_after == 7.0

    hubspot.fail_next(1, status=429, retry_after=None)
    with pytest.raises(CrmRateLimited) as err:
        await connector.upsert_contacts([contact(1)])
    assert err.value.retry_after == 10.0
    assert hubspot.contacts == {}

    (outcome,) = await connector.upsert_contacts([contact(1)])
    assert outcome.crm_id is not None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_unavailable(
    hubspot: FakeHubSpot, http: httpx.AsyncClient, status: int
) -> None:
    hubspot.fail_next(1, status=status)
    with pytest.raises(CrmUnavailable, match=f"hubspot {status}"):
        await hubspot_connector(hubspot, http).upsert_contacts([contact(1)])


async def test_an_outage_is_unavailable_and_loses_nothing_after(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    hubspot.outage = True
    with pytest.raises(CrmUnavailable):
        await connector.upsert_contacts([contact(1)])
    with pytest.raises(CrmUnavailable):
        await connector.create_task(task_request(crm_id="1001"))
    hubspot.outage = False
    (outcome,) = await connector.upsert_contacts([contact(1)])
    assert outcome.crm_id is not None and outcome.error is None


async def test_a_whole_batch_400_is_rejected_with_hubspots_words(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    hubspot.fail_next(
        1,
        status=400,
        body={
            "status": "error",
            "message": "Invalid input JSON on line 1, column 12",
            "correlationId": "5b5f2f38",
            "category": "VALIDATION_ERROR",
        },
    )
    with pytest.raises(CrmRejected, match="hubspot 400: VALIDATION_ERROR: Invalid input JSON"):
        await hubspot_connector(hubspot, http).upsert_contacts([contact(1)])


@pytest.mark.parametrize("token", ["pat-na1-revoked", ""])
async def test_a_bad_token_is_unavailable_not_rejected(
    hubspot: FakeHubSpot, http: httpx.AsyncClient, token: str
) -> None:
    connector = hubspot_connector(hubspot, http, token=token)
    with pytest.raises(CrmUnavailable, match="hubspot 401: INVALID_AUTHENTICATION") as err:
        await connector.upsert_contacts([contact(1)])
    assert "token" in str(err.value)
    assert hubspot.contacts == {}


async def test_missing_scopes_are_unavailable(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    hubspot.fail_next(1, status=403)
    with pytest.raises(CrmUnavailable, match="hubspot 403: MISSING_SCOPES"):
        await hubspot_connector(hubspot, http).upsert_contacts([contact(1)])


async def test_a_refused_connection_is_unavailable(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = hubspot_connector(FakeHubSpot(url=f"http://127.0.0.1:{port}"), http)
    with pytest.raises(CrmUnavailable, match="ConnectError"):
        await connector.upsert_contacts([contact(1)])


async def test_no_answer_in_time_is_unavailable(http: httpx.AsyncClient) -> None:
    with FakeProvider(lambda received: HANG).running() as silent:
        connector = hubspot_connector(FakeHubSpot(url=silent.url), http, timeout=0.05)
        with pytest.raises(CrmUnavailable, match="ReadTimeout"):
            await connector.upsert_contacts([contact(1)])


async def test_task_for_the_owner_associated_with_the_contact(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    connector = hubspot_connector(hubspot, http)
    (outcome,) = await connector.upsert_contacts([contact(1)])
    task_id = await connector.create_task(task_request(crm_id=outcome.crm_id))

    stored = hubspot.tasks[task_id]
    assert stored.contact_ids == [outcome.crm_id]
    assert stored.association_type_ids == [204]
    assert stored.properties == {
        "hs_timestamp": "2026-03-02T09:00:00.000Z",
        "hs_task_subject": "Qualified lead: lead1@example.com",
        "hs_task_body": "Score 57; downloaded the whitepaper, viewed pricing twice.",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
        "hubspot_owner_id": "7001",
    }
    association = hubspot.calls("/objects/tasks")[0].json["associations"][0]
    assert association["types"] == [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}
    ]


async def test_a_task_without_owner_leaves_hubspot_to_assign(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    known = hubspot.add_contact("lead1@example.com")
    task_id = await hubspot_connector(hubspot, http).create_task(
        task_request(crm_id=known.id, owner_id=None)
    )
    assert "hubspot_owner_id" not in hubspot.tasks[task_id].properties


async def test_a_task_for_a_contact_without_crm_id_upserts_it_first(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    task_id = await hubspot_connector(hubspot, http).create_task(task_request(crm_id=None))
    created = hubspot.contact("lead1@example.com")
    assert created is not None
    assert hubspot.tasks[task_id].contact_ids == [created.id]
    assert [request.path for request in hubspot.requests] == [UPSERT, "/crm/v3/objects/tasks"]


async def test_a_task_without_crm_id_or_email_is_rejected(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    with pytest.raises(CrmRejected, match="no_email"):
        await hubspot_connector(hubspot, http).create_task(task_request(crm_id=None, email=None))
    assert hubspot.requests == []


async def test_a_task_for_an_unknown_contact_is_rejected(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    with pytest.raises(CrmRejected, match=r"hubspot 400: VALIDATION_ERROR: .*associations"):
        await hubspot_connector(hubspot, http).create_task(task_request(crm_id="424242"))
    assert hubspot.tasks == {}


async def test_a_rate_limited_task_is_retried_later(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    known = hubspot.add_contact("lead1@example.com")
    hubspot.fail_next(1, status=429, retry_after="2")
    with pytest.raises(CrmRateLimited) as err:
        await hubspot_connector(hubspot, http).create_task(task_request(crm_id=known.id))
    assert err.value.retry_after == 2.0
    assert hubspot.tasks == {}


async def test_a_contact_the_answer_does_not_name_is_not_taken_as_synced(
    hubspot: FakeHubSpot, http: httpx.AsyncClient
) -> None:
    hubspot.fail_next(
        1,
        status=207,
        body={
            "status": "COMPLETE",
            "results": [],
            "errors": [
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "nope",
                    "context": {"ids": "LEAD2@example.com"},
                }
            ],
        },
    )
    outcomes = await hubspot_connector(hubspot, http).upsert_contacts([contact(1), contact(2)])
    by_id = {outcome.contact_id: outcome for outcome in outcomes}
    assert by_id["c-1"].error is not None and by_id["c-1"].error.startswith("missing_from_answer")
    assert by_id["c-2"].error == "VALIDATION_ERROR: nope"
    assert by_id["c-1"].crm_id is None and by_id["c-2"].crm_id is None
