"""Journeyman's payload converter writes the same JSON as the SDK's, without its deep copy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from temporalio.converter import DataConverter

from journeyman.payloads import JourneymanPayloadConverter, journeyman_data_converter
from journeyman.settings import Settings
from journeyman.temporal import connect_options
from workflows.contracts import (
    ContactSnapshot,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    SendRequest,
    StepRecord,
)

AT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
TRIGGER = Event(
    id="evt-1",
    contact_id="c-1",
    name="cart_abandoned",
    properties={"cart": {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 1}]}, "x": None},
    occurred_at=AT,
)
VALUES = [
    EnrollmentInput(contact_id="c-1", key="cart-9", trigger=TRIGGER),
    SendRequest(
        message_id="m",
        workflow_id="w",
        run_id="r",
        journey="abandoned_cart",
        version=2,
        step="reminder",
        contact_id="c-1",
        channel="email",
        template="cart_reminder",
        context={"nested": [{"a": [1, 2.5, "é"]}], "empty": {}},
        trigger=TRIGGER,
    ),
    ContactSnapshot(
        contact_id="c-1", exists=True, attributes={"tags": ["vip"]}, consent={"email": True}
    ),
    EnrollmentResult(
        status="completed", ended_by=None, steps=[StepRecord("s", "send", AT, "sent")]
    ),
    [TRIGGER, {"plain": "dict"}, ("a", "tuple")],
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_the_json_is_byte_for_byte_the_sdks(value: object) -> None:
    ours = JourneymanPayloadConverter().to_payloads([value])
    sdks = DataConverter.default.payload_converter.to_payloads([value])
    assert ours == sdks


@pytest.mark.parametrize("value", VALUES[:4], ids=lambda v: type(v).__name__)
def test_values_come_back_as_they_went(value: object) -> None:
    converter = JourneymanPayloadConverter()
    [back] = converter.from_payloads(converter.to_payloads([value]), [type(value)])
    assert back == value


def test_the_encoder_does_not_copy_the_dataclass_contents() -> None:
    # What makes it cheaper: the dict handed to json holds the very objects of the fields.
    encoder = JourneymanPayloadConverter().converters[b"json/plain"]
    default = encoder._encoder  # type: ignore[attr-defined]
    event = dataclasses.replace(TRIGGER)
    fields = default().default(event)
    assert fields["properties"] is event.properties


def test_every_client_journeyman_connects_uses_it() -> None:
    options = connect_options(Settings())
    assert options["data_converter"].payload_converter_class is JourneymanPayloadConverter
    assert journeyman_data_converter().payload_converter_class is JourneymanPayloadConverter
