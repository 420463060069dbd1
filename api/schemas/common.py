"""Field types shared by the request and response models."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints

from persistence.models import as_utc

# Contact ids become part of workflow ids (`journey:<name>:<contact_id>[:<key>]`); a colon
# in one would let two different enrollments share an id, so it is refused.
ContactId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s:\x00-\x1f\x7f]+$")
]
# Caller-chosen identifiers (event ids, keys): printable, no whitespace.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\x00-\x1f\x7f]+$")
]
# Free text that is stored: no control characters (PostgreSQL refuses NUL in text).
ShortText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]

MAX_JSON_BYTES = 64 * 1024


def bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    # Free-form objects travel into workflow histories; Temporal caps payloads, so a runaway
    # one is refused here with a clear message instead of failing deep in a workflow.
    # NaN and Infinity parse in Python but are not JSON: PostgreSQL would refuse them.
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ValueError("must not contain NaN or Infinity") from None
    size = len(text.encode())
    if size > MAX_JSON_BYTES:
        raise ValueError(f"must be at most {MAX_JSON_BYTES} bytes as JSON, got {size}")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_json)]


class ErrorOut(BaseModel):
    """Every error answer: `{"detail": ...}` (a list of problems for 422)."""

    detail: str | list[dict[str, Any]]
