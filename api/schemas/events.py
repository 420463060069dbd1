"""Events: behaviour facts sent by backends, and what routing did with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.schemas.common import ContactId, Identifier, JsonObject, date_time_text
from persistence.models import as_utc
from workflows.contracts import is_system_event

MAX_BATCH = 1000
# Clocks drift and time zones get mangled; a day ahead is tolerated, more is a bug upstream.
MAX_FUTURE = timedelta(days=1)
# Before this, an occurred_at is a unit or epoch mistake (0 seconds is 1970), not history.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

EventName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$"),
]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier | None = Field(
        default=None,
        description="Idempotency key: the same id again returns the first answer. "
        "Generated when absent (then a retry is a new event).",
    )
    contact_id: ContactId
    name: EventName = Field(examples=["cart_abandoned"])
    properties: JsonObject = Field(default_factory=dict)
    occurred_at: datetime | None = Field(
        default=None, description="When it happened; naive times are UTC. Default: now."
    )

    @field_validator("name")
    @classmethod
    def _not_a_system_event(cls, value: str) -> str:
        if is_system_event(value):
            raise ValueError(
                f"'{value}' is an event Journeyman emits itself (consent, engagement, lead "
                "score or CRM lifecycle); change the consent, contact or score instead, e.g. "
                "PUT /v1/contacts/{contact_id}/subscriptions"
            )
        return value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _date_time_text(cls, value: object) -> object:
        return date_time_text(value)

    @field_validator("occurred_at")
    @classmethod
    def _not_before_2000(cls, value: datetime | None) -> datetime | None:
        if value is not None and as_utc(value) < EARLIEST:
            raise ValueError("must not be before 2000-01-01")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if value > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError("must not be more than a day in the future")
        return value


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class JourneyRouting(BaseModel):
    journey: str
    workflow_id: str | None = Field(description="Null when the event could not name one.")
    action: Literal["started", "signalled", "skipped"]
    reason: str | None = Field(
        default=None, description="Why it was skipped, e.g. `reentry_never`, `missing_key:cart_id`."
    )


class EventAccepted(BaseModel):
    id: str
    journeys: list[JourneyRouting]


class BatchItem(BaseModel):
    index: int
    status: Literal["accepted", "conflict"]
    id: str
    journeys: list[JourneyRouting] = Field(default_factory=list)
    detail: str | None = None


class EventBatchAccepted(BaseModel):
    results: list[BatchItem]
