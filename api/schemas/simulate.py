"""The simulate endpoint's body; its answer is `journeyman.simulate.Simulation`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import bounded_json
from journeyman.simulate import MAX_EVENTS, SimContact, SimEvent, Simulation


class SimulationRequest(BaseModel):
    """A hypothetical contact and their events. An event at offset 0 that triggers the
    journey starts it (else it starts with a trigger without properties)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "contact": {
                        "email": "ada@example.com",
                        "timezone": "Europe/Rome",
                        "attributes": {"first_name": "Ada"},
                    },
                    "events": [
                        {"name": "cart_abandoned", "after": "0", "properties": {"cart_id": "c1"}},
                        {"name": "order_placed", "after": "2h", "properties": {"cart_id": "c1"}},
                    ],
                }
            ]
        },
    )

    contact: SimContact = Field(default_factory=SimContact)
    events: list[SimEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    # The simulated start (with a zone); default now. It sets the time of day the journey
    # starts at, which quiet hours and local times depend on.
    start_at: datetime | None = None

    # The free-form parts are held to what the real API holds events and contacts to (size,
    # depth, no NaN, text that encodes): they end up in workflow payloads and in the answer.
    @field_validator("contact")
    @classmethod
    def _bounded_contact(cls, contact: SimContact) -> SimContact:
        _bounded("attributes", contact.attributes)
        if not math.isfinite(contact.score):
            raise ValueError("score must be a finite number")
        return contact

    @field_validator("events")
    @classmethod
    def _bounded_events(cls, events: list[SimEvent]) -> list[SimEvent]:
        for index, sim_event in enumerate(events):
            _bounded(f"events[{index}].properties", sim_event.properties)
        return events


def _bounded(where: str, value: dict[str, Any]) -> None:
    try:
        bounded_json(value)
    except ValueError as err:
        raise ValueError(f"{where} {err}") from None


class SimulationOut(Simulation):
    """The answer, as documented: empty fields are left out of it, so none is required."""

    ended_by: str | None = None
    ended_after: str | None = None
