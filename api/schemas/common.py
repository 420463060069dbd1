"""Field types shared by the request and response models."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from persistence.models import as_utc

# What no identifier holds: control characters (C0, DEL, C1) and Unicode white space. Spelled
# out rather than `\s`, which means different things to Python, to pydantic's Rust engine and
# to ECMA-262 (the OpenAPI document's dialect, used by clients and by the fuzz tests).
NOT_IN_IDS = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

# Contact ids become part of workflow ids (`journey:<name>:<contact_id>[:<key>]`); a colon
# in one would let two different enrollments share an id, so it is refused.
ContactId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=rf"^[^:{NOT_IN_IDS}]+$")
]
# Caller-chosen identifiers (event ids, keys): printable, no whitespace.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=rf"^[^{NOT_IN_IDS}]+$")
]
# Free text that is stored: no control characters (PostgreSQL refuses NUL in text).
ShortText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]

MAX_JSON_BYTES = 64 * 1024
# Objects and arrays within one another, the object itself being level 1. Templates and
# journey rules read a few levels at most; deeper is a mistake or an attack on the parsers
# (and the recursion) of every component the object travels through.
MAX_JSON_DEPTH = 10


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (0 for a scalar); iterative, so any
    depth is measured without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    # Free-form objects travel into workflow histories; Temporal caps payloads, so a runaway
    # one is refused here with a clear message instead of failing deep in a workflow.
    # NaN and Infinity parse in Python but are not JSON: PostgreSQL would refuse them.
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels deep, got {depth}")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError:
        raise ValueError("must not contain NaN or Infinity") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        # JSON's "\ud800" escape parses to a lone surrogate: not text, and not storable.
        raise ValueError("must be Unicode text: it holds a lone surrogate") from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_BYTES} bytes as JSON, got {size}")
    return value


class NoNull:
    """Documents an optional field without `null`, for fields where leaving it out means
    "keep" and a validator refuses null: the schema then says what the API takes."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
        if len(options) == 1:
            del schema["anyOf"]
            schema.update(options[0])
        return schema


_NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?")


def date_time_text(value: object) -> object:
    """Refuse a number where a date-time goes. Pydantic would read one (or a text of digits)
    as Unix time, seconds or milliseconds by guess; the schema says ISO 8601."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-23T10:00:00Z")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
# A date-time the client sends: ISO 8601 text only.
DateTimeIn = Annotated[datetime, BeforeValidator(date_time_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_json)]


class ErrorOut(BaseModel):
    """Every error answer: `{"detail": ...}` (a list of problems for 422)."""

    detail: str | list[dict[str, Any]]


def json_errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries answering `ErrorOut` as JSON, for routes whose own answer is not
    JSON (an HTML page, Prometheus text): `model=` would document errors in the route's type."""
    schema = ErrorOut.model_json_schema()
    return {
        code: {"description": text, "content": {"application/json": {"schema": schema}}}
        for code, text in descriptions.items()
    }
