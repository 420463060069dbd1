"""HubSpot's inbound webhooks: the v3 signature (signed by the local HubSpot, an independent
reading of HubSpot's instructions) and the property-change events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.crm import (
    REQUEST_TIMESTAMP_HEADER,
    SIGNATURE_V3_HEADER,
    InvalidInboundPayload,
    parse_hubspot_webhook,
    verify_hubspot_signature_v3,
)

from .fake_hubspot import CLIENT_SECRET, FakeHubSpot

URI = "https://journeys.example.com/v1/webhooks/crm?source=hubspot"
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def property_change(
    event_id: int = 3816279340, object_id: int = 1246965, **fields: Any
) -> dict[str, Any]:
    """One event as HubSpot's webhooks API documents it."""
    return {
        "eventId": event_id,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": NOW_MS - 1500,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": "lifecyclestage",
        "propertyValue": "customer",
        "changeSource": "CRM_UI",
        **fields,
    }


def signed(
    events: list[dict[str, Any]], *, at_ms: int = NOW_MS, uri: str = URI
) -> tuple[bytes, str, str]:
    body, headers = FakeHubSpot().signed_webhook(uri, events, timestamp_ms=at_ms)
    return body, headers[REQUEST_TIMESTAMP_HEADER], headers[SIGNATURE_V3_HEADER]


def verify(body: bytes, timestamp: str, signature: str, **overrides: Any) -> bool:
    values: dict[str, Any] = {
        "client_secret": CLIENT_SECRET,
        "method": "POST",
        "uri": URI,
        "body": body,
        "timestamp_ms": timestamp,
        "signature": signature,
        "now": NOW,
        **overrides,
    }
    return verify_hubspot_signature_v3(**values)


def test_a_request_signed_by_hubspot_verifies() -> None:
    assert verify(*signed([property_change()]))


def test_a_signature_made_with_another_secret_is_refused() -> None:
    body, timestamp, signature = signed([property_change()])
    assert not verify(body, timestamp, signature, client_secret="someone-elses-secret")


def test_an_empty_secret_verifies_nothing() -> None:
    body = b"[]"
    headers = FakeHubSpot(client_secret="").signature_headers("POST", URI, body, NOW_MS)
    assert not verify(body, str(NOW_MS), headers[SIGNATURE_V3_HEADER], client_secret="")


@pytest.mark.parametrize(
    "edit",
    [
        {"body": json.dumps([property_change(propertyValue="evangelist")]).encode()},
        {"uri": "https://journeys.example.com/v1/webhooks/crm"},
        {"method": "PUT"},
        {"timestamp_ms": str(NOW_MS + 1)},
    ],
    ids=["body", "uri", "method", "timestamp"],
)
def test_an_edited_request_is_refused(edit: dict[str, Any]) -> None:
    body, timestamp, signature = signed([property_change()])
    assert verify(body, timestamp, signature)
    edited_body = edit.pop("body", body)
    edited_timestamp = edit.pop("timestamp_ms", timestamp)
    assert not verify(edited_body, edited_timestamp, signature, **edit)


@pytest.mark.parametrize(
    ("offset", "valid"),
    [
        (timedelta(minutes=4, seconds=59), True),
        (timedelta(minutes=5, seconds=1), False),
        (timedelta(hours=3), False),
        (-timedelta(minutes=6), False),  # from the future: a clock that far off is suspect
    ],
)
def test_only_recent_requests_verify(offset: timedelta, valid: bool) -> None:
    at_ms = int((NOW - offset).timestamp() * 1000)
    assert verify(*signed([property_change()], at_ms=at_ms)) is valid


@pytest.mark.parametrize("timestamp", ["", "yesterday", "1e12"])
def test_a_malformed_timestamp_is_refused(timestamp: str) -> None:
    body, _, signature = signed([property_change()])
    assert not verify(body, timestamp, signature)


def test_encoded_characters_in_the_uri_are_compared_decoded() -> None:
    # HubSpot signs the URI with these escapes decoded, whichever form the receiver sees.
    plain = "https://journeys.example.com/v1/webhooks/crm?next=/a:b@c"
    body, timestamp, signature = signed([], uri=plain)
    encoded = "https://journeys.example.com/v1/webhooks/crm?next=%2Fa%3Ab%40c"
    assert verify(body, timestamp, signature, uri=encoded)


def test_a_garbled_signature_is_refused() -> None:
    body, timestamp, _ = signed([property_change()])
    assert not verify(body, timestamp, "é not base64 ✓")


def test_property_changes_become_inbound_changes() -> None:
    body = json.dumps(
        [
            property_change(),
            property_change(event_id=11, object_id=77, propertyName="phone", propertyValue=""),
            {**property_change(event_id=12), "subscriptionType": "contact.creation"},
            property_change(
                event_id=13, subscriptionType="object.propertyChange", objectTypeId="0-1"
            ),
            property_change(
                event_id=14, subscriptionType="object.propertyChange", objectTypeId="0-3"
            ),
        ]
    ).encode()
    changes = parse_hubspot_webhook(body)
    assert [(c.event_id, c.crm_id, c.remote_field, c.value) for c in changes] == [
        ("hubspot:3816279340:1246965:lifecyclestage", "1246965", "lifecyclestage", "customer"),
        ("hubspot:11:77:phone", "77", "phone", ""),
        ("hubspot:13:1246965:lifecyclestage", "1246965", "lifecyclestage", "customer"),
    ]
    assert all(change.contact_id is None for change in changes)
    assert changes[0].occurred_at == NOW - timedelta(milliseconds=1500)


def test_a_redelivery_has_the_same_event_id() -> None:
    first = parse_hubspot_webhook(json.dumps([property_change()]).encode())
    again = parse_hubspot_webhook(json.dumps([property_change(attemptNumber=3)]).encode())
    assert first[0].event_id == again[0].event_id


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"events": []}', "JSON array"),
        (json.dumps([property_change(eventId=None)]).encode(), "eventId"),
        (json.dumps([property_change(occurredAt="yesterday")]).encode(), "occurredAt"),
        (json.dumps([property_change(propertyValue={"a": 1})]).encode(), "propertyValue"),
    ],
)
def test_a_malformed_body_is_invalid(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInboundPayload, match=message):
        parse_hubspot_webhook(body)
