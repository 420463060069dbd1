"""Messages: what journeys sent, or held back and why, to one contact."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import UtcDatetime

DEFAULT_PAGE = 50
MAX_PAGE = 200


class MessagePublic(BaseModel):
    message_id: str
    workflow_id: str
    journey: str
    step: str
    channel: str
    category: str = Field(examples=["marketing"])
    template: str
    status: str = Field(
        description="`sending`, `sent`, `failed` or `suppressed` (or later delivery states)."
    )
    reason: str | None = Field(
        description="Why it was suppressed or failed, e.g. `unsubscribed`, `quiet_hours`, "
        "`frequency_cap`, `no_address`."
    )
    to_address: str | None
    subject: str | None
    created_at: UtcDatetime
    sent_at: UtcDatetime | None


class MessagePage(BaseModel):
    messages: list[MessagePublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )
