"""Answers of `POST /v1/webhooks/crm` (the request bodies are the CRMs' own formats: see
`activities/crm/hubspot.py` and `activities/crm/webhook.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.events import JourneyRouting


class CrmChangeOut(BaseModel):
    event_id: str = Field(description="The CRM's id of the change (a redelivery repeats it).")
    field: str = Field(description="The local field, or the CRM property when unmapped.")
    outcome: Literal[
        "applied",
        "older_than_local",
        "stale",
        "duplicate",
        "unknown_contact",
        "unmapped_field",
        "not_pulled",
    ]
    contact_id: str | None = None
    event: str | None = Field(
        default=None, description="The `lifecycle.<stage>` event this change emitted, by id."
    )
    journeys: list[JourneyRouting] = Field(
        default_factory=list, description="What routing that event did."
    )


class CrmWebhookOut(BaseModel):
    changes: list[CrmChangeOut]
