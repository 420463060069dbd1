"""Bodies of `POST /v1/webhooks/email`: Journeyman's own format and Mailgun's, told apart by shape.

Mailgun's event webhooks (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/):
`{"signature": {"timestamp", "token", "signature"}, "event-data": {"event", "id", "timestamp",
"severity", "message": {"headers": {"message-id"}}, "recipient", ...}}`, one event per request.
Only the fields Journeyman uses are read; the rest is ignored, as Mailgun adds fields over time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from api.schemas.common import Identifier, JsonObject, UtcDatetime
from journeyman.feedback import EventOutcome, FeedbackBatch, FeedbackEvent, MailgunSignature

MAX_EVENTS = 1000
# A message id or a Message-ID header: printable, bounded like the column that stores it.
MessageRef = Annotated[
    str, StringConstraints(min_length=1, max_length=998, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[!-~]+$")]


class FeedbackEventIn(BaseModel):
    """One event in Journeyman's format."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(description="The provider's event id; a repeat changes nothing.")
    type: Literal["delivered", "bounced", "complained"]
    message_id: MessageRef = Field(
        description="Our message id, or the email's Message-ID header (with or without <>)."
    )
    bounce: Literal["hard", "soft"] | None = Field(
        default=None, description="For `bounced`: `hard` suppresses the address, `soft` is noted."
    )
    at: UtcDatetime | None = Field(default=None, description="When it happened; default now.")
    detail: JsonObject = Field(default_factory=dict, description="Kept with the record.")

    @model_validator(mode="after")
    def _bounce_only_for_bounced(self) -> FeedbackEventIn:
        if self.type == "bounced" and self.bounce is None:
            raise ValueError("a bounced event needs `bounce`: hard or soft")
        if self.type != "bounced" and self.bounce is not None:
            raise ValueError("`bounce` is only for bounced events")
        return self

    def to_event(self, now: datetime) -> FeedbackEvent:
        return FeedbackEvent(
            id=self.id,
            type=self.type,
            message_ref=self.message_id,
            at=self.at or now,
            bounce=self.bounce,
            detail=dict(self.detail),
        )


class FeedbackIn(BaseModel):
    """Journeyman's format: `Authorization: Bearer <JOURNEYMAN_FEEDBACK_SECRET>`."""

    model_config = ConfigDict(extra="forbid")

    events: list[FeedbackEventIn] = Field(min_length=1, max_length=MAX_EVENTS)

    def to_batch(self, now: datetime) -> FeedbackBatch:
        return FeedbackBatch(
            provider="journeyman", events=[event.to_event(now) for event in self.events]
        )


class MailgunSignatureIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # Seconds since the epoch; Mailgun sends it as a string. Ten digits until the year 2286.
    timestamp: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,11}$")]
    token: Token
    signature: Annotated[str, StringConstraints(max_length=200)]
    parent_signature: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, alias="parent-signature"
    )

    def to_signature(self) -> MailgunSignature:
        return MailgunSignature(
            timestamp=self.timestamp,
            token=self.token,
            signature=self.signature,
            parent_signature=self.parent_signature,
        )


class MailgunHeadersIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    message_id: MessageRef | None = Field(default=None, alias="message-id")


class MailgunMessageIn(BaseModel):
    headers: MailgunHeadersIn = Field(default_factory=MailgunHeadersIn)


class MailgunEventDataIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    event: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    id: Identifier
    timestamp: float = Field(ge=0, lt=10**11)
    severity: Literal["permanent", "temporary"] | None = None
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    recipient: Annotated[str, StringConstraints(max_length=320)] | None = None
    message: MailgunMessageIn = Field(default_factory=MailgunMessageIn)
    delivery_status: dict[str, Any] | None = Field(default=None, alias="delivery-status")

    def to_event(self) -> FeedbackEvent:
        # Mailgun's `failed` is our `bounced`: permanent is a hard bounce, temporary a soft one.
        failed = self.event == "failed"
        bounce: Literal["hard", "soft"] | None = None
        if failed:
            bounce = "hard" if self.severity == "permanent" else "soft"
        detail: dict[str, Any] = {}
        if self.reason:
            detail["reason"] = self.reason
        status = self.delivery_status or {}
        for key in ("code", "message", "description"):
            value = status.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                detail[key] = value if isinstance(value, int) else value[:500]
        return FeedbackEvent(
            id=self.id,
            type="bounced" if failed else self.event,
            message_ref=self.message.headers.message_id,
            at=datetime.fromtimestamp(self.timestamp, UTC),
            bounce=bounce,
            detail=detail,
        )


class MailgunWebhookIn(BaseModel):
    """Mailgun's format; authenticated by its signature (HMAC-SHA256 with the signing key)."""

    model_config = ConfigDict(populate_by_name=True)

    signature: MailgunSignatureIn
    event_data: MailgunEventDataIn = Field(alias="event-data")

    def to_batch(self) -> FeedbackBatch:
        return FeedbackBatch(
            provider="mailgun", events=[self.event_data.to_event()], token=self.signature.token
        )


def _shape(value: Any) -> str | None:
    if isinstance(value, dict):
        if "event-data" in value or "signature" in value:
            return "mailgun"
        if "events" in value:
            return "journeyman"
        return None
    if isinstance(value, MailgunWebhookIn):
        return "mailgun"
    if isinstance(value, FeedbackIn):
        return "journeyman"
    return None


WebhookBody = Annotated[
    Annotated[FeedbackIn, Tag("journeyman")] | Annotated[MailgunWebhookIn, Tag("mailgun")],
    Discriminator(
        _shape,
        custom_error_type="unknown_format",
        custom_error_message=(
            "not a known feedback format: want Journeyman's {'events': [...]} "
            "or Mailgun's {'signature': ..., 'event-data': ...}"
        ),
    ),
]


class FeedbackOutcomeOut(BaseModel):
    id: str = Field(description="The provider's event id.")
    outcome: Literal["applied", "duplicate", "ignored"]
    message_id: str | None = Field(default=None, description="Our message id, when found.")
    reason: str | None = Field(default=None, description="Why it was ignored.")

    @classmethod
    def of(cls, outcome: EventOutcome) -> FeedbackOutcomeOut:
        return cls(
            id=outcome.id,
            outcome=outcome.outcome,
            message_id=outcome.message_id,
            reason=outcome.reason,
        )


class FeedbackOut(BaseModel):
    events: list[FeedbackOutcomeOut]
