"""The simulate endpoint's body; its answer is `journeyman.simulate.Simulation`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from journeyman.simulate import MAX_EVENTS, SimContact, SimEvent


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
