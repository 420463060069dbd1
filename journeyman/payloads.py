"""The payload converter of every Journeyman client: the SDK's, with a cheaper dataclass encoder.

The SDK's JSON encoder turns a dataclass into a dict with `dataclasses.asdict`, which deep-copies
every list and dict inside it (a contact snapshot's attributes, an event's properties) before
`json` walks them again. On the API's intake that copy was ~5% of the main thread's samples,
and the worker pays it for every activity input and result. `FieldsJSONEncoder` hands `json`
the fields as they are and lets it recurse: the same JSON, byte for byte
(tests/test_payloads.py), so histories written either way read the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)


class FieldsJSONEncoder(AdvancedJSONEncoder):
    def default(self, o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            # Nested dataclasses, lists and dicts are encoded as json reaches them.
            return {field.name: getattr(o, field.name) for field in dataclasses.fields(o)}
        return super().default(o)


class JourneymanPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters in their order, the JSON one with `FieldsJSONEncoder`."""

    def __init__(self) -> None:
        super().__init__(
            *(
                JSONPlainPayloadConverter(encoder=FieldsJSONEncoder)
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def journeyman_data_converter(base: DataConverter = DataConverter.default) -> DataConverter:
    return dataclasses.replace(base, payload_converter_class=JourneymanPayloadConverter)
