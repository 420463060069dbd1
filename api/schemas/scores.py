"""A contact's lead score and its history."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import UtcDatetime

DEFAULT_HISTORY = 50
MAX_HISTORY = 500


class ScoreChangePublic(BaseModel):
    event_id: str = Field(
        description="The scored event's id; `decay:<time>` for a threshold crossed by decay."
    )
    event_name: str = Field(examples=["page_viewed"])
    delta: float = Field(description="Points the event gave (after daily caps), undecayed.")
    score: float = Field(description="The score right after this change.")
    at: UtcDatetime = Field(description="When the change applied to the score.")
    rules: dict[str, float] = Field(description="Points per matching rule (after its cap).")
    emitted: str | None = Field(
        description="`lead.qualified` or `lead.disqualified` if this change crossed a threshold."
    )


class ScorePublic(BaseModel):
    contact_id: str
    score: float = Field(description="The score now, decay applied (0 if never scored).")
    qualified: bool = Field(description="Whether the contact is a qualified lead now.")
    qualify_at: float = Field(description="Reaching this score qualifies the contact.")
    disqualify_below: float = Field(description="A qualified contact falling under this is not.")
    half_life_days: float = Field(description="Points halve over this many days.")
    history: list[ScoreChangePublic] = Field(description="Newest first.")
