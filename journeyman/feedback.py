"""Provider feedback on sent emails: delivered, bounced, complained.

`POST /v1/webhooks/email` turns a provider's request into a `FeedbackBatch`; this module
checks who sent it and applies it.

Why the order of `FeedbackService.apply` makes provider retries safe:
- Every effect is idempotent on its own: a message timestamp is set only while empty, and
  consent is withdrawn through `ConsentService` (compare-and-set, one `unsubscribed` event
  per actual change, routed before it returns).
- The engagement row, keyed by the provider's event id (`engagements.source_id`), is written
  LAST, in the transaction that sets the message timestamp and the suppression. So when
  anything fails (Temporal down while routing the `unsubscribed` event: a 503), nothing says
  "done" and the provider's retry does the whole event again; once the row exists, a replay
  answers `duplicate` and changes nothing.
- A Mailgun signature's token is claimed before any effect (a captured request cannot be
  replayed, even concurrently) and released again if applying fails, so that a retry that
  reuses the same signature is still accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update

from journeyman.settings import DEV_FEEDBACK_SECRET, Settings
from journeyman.unsubscribe import ConsentService, Source, UnknownContactError
from persistence import Contact, Database, Engagement, Message

logger = logging.getLogger("journeyman.feedback")

Provider = Literal["journeyman", "mailgun"]
Outcome = Literal["applied", "duplicate", "ignored"]

# What an event records (`engagements.kind`), by its normalised type and bounce class.
DELIVERED = "delivered"
BOUNCED = "bounced"  # hard: the address does not exist
SOFT_BOUNCED = "soft_bounced"  # temporary: recorded, nothing else
COMPLAINED = "complained"
# A claimed Mailgun signature token; message_id "" keeps it out of every message's numbers.
SIGNATURE_TOKEN = "webhook_token"
# Why email is suppressed for good (`contacts.email_suppressed`); also the `source` of the
# `unsubscribed` event it records.
HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"
_SUPPRESSES = {BOUNCED: (HARD_BOUNCE, "bounce"), COMPLAINED: (COMPLAINT, "complaint")}
_STAMPS = {DELIVERED: "delivered_at", BOUNCED: "bounced_at", COMPLAINED: "complained_at"}
_MAX_REF = 998  # the longest Message-ID we store

__all__ = [
    "COMPLAINT",
    "HARD_BOUNCE",
    "EventOutcome",
    "FeedbackAuthError",
    "FeedbackBatch",
    "FeedbackEvent",
    "FeedbackReport",
    "FeedbackService",
    "MailgunSignature",
    "check_bearer",
    "check_mailgun_signature",
    "mailgun_signature",
]


class FeedbackAuthError(Exception):
    """The request is not from who it claims (wrong secret, bad, stale or replayed signature)."""


@dataclass
class FeedbackEvent:
    """One provider event, in Journeyman's terms."""

    id: str  # the provider's event id: the idempotency key
    type: str  # delivered | bounced | complained; anything else is ignored
    message_ref: str | None  # our message id, or the Message-ID header (with or without <>)
    at: datetime
    bounce: Literal["hard", "soft"] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeedbackBatch:
    provider: Provider
    events: list[FeedbackEvent]
    # Mailgun's signature token, claimed once; None for the Journeyman format.
    token: str | None = None


@dataclass
class EventOutcome:
    id: str
    outcome: Outcome
    message_id: str | None = None
    reason: str | None = None


@dataclass
class FeedbackReport:
    events: list[EventOutcome]


@dataclass
class MailgunSignature:
    timestamp: str
    token: str
    signature: str
    # Sent for subaccounts, signed with the primary account's key.
    parent_signature: str | None = None


def check_bearer(settings: Settings, authorization: str | None) -> None:
    """The Journeyman format: `Authorization: Bearer <JOURNEYMAN_FEEDBACK_SECRET>`."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise FeedbackAuthError("send 'Authorization: Bearer <JOURNEYMAN_FEEDBACK_SECRET>'")
    if settings.env == "production" and settings.feedback_secret == DEV_FEEDBACK_SECRET:
        # A guessable secret would let anyone unsubscribe contacts with forged bounces.
        raise FeedbackAuthError("JOURNEYMAN_FEEDBACK_SECRET is not set on this server")
    if not hmac.compare_digest(given.strip().encode(), settings.feedback_secret.encode()):
        raise FeedbackAuthError("wrong feedback secret")


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256 over timestamp + token, no separator.

    https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
    """
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def check_mailgun_signature(settings: Settings, signature: MailgunSignature, now: datetime) -> None:
    """Signed with our key, and fresh. Replay of the token is checked when it is claimed."""
    key = settings.mailgun_signing_key
    if not key:
        raise FeedbackAuthError("Mailgun webhooks are not configured on this server")
    expected = mailgun_signature(key, signature.timestamp, signature.token).encode()
    given = [signature.signature, signature.parent_signature or ""]
    # Both compared, so timing tells nothing about which one matched.
    matched = False
    for candidate in given:
        matched |= hmac.compare_digest(candidate.lower().encode(), expected)
    if not matched:
        raise FeedbackAuthError("bad Mailgun signature")
    signed_at = datetime.fromtimestamp(int(signature.timestamp), UTC)
    if abs(now - signed_at) > timedelta(seconds=settings.mailgun_max_age_seconds):
        raise FeedbackAuthError("stale Mailgun signature (timestamp too far from now)")


class FeedbackService:
    def __init__(self, *, database: Database, consent: ConsentService) -> None:
        self._database = database
        self._consent = consent

    async def apply(self, batch: FeedbackBatch) -> FeedbackReport:
        """Apply every event in order; FeedbackAuthError if the batch's token was used before."""
        token_id = f"mailgun-token:{batch.token}" if batch.token is not None else None
        if token_id is not None and not await self._claim(token_id):
            raise FeedbackAuthError("this Mailgun signature was already used (replay)")
        try:
            outcomes = [await self._apply_one(batch.provider, event) for event in batch.events]
        except BaseException:
            if token_id is not None:
                await self._release(token_id)
            raise
        return FeedbackReport(events=outcomes)

    async def _apply_one(self, provider: Provider, event: FeedbackEvent) -> EventOutcome:
        kind = _kind(event)
        if kind is None:
            return EventOutcome(event.id, "ignored", reason=f"unsupported event '{event.type}'")
        source_id = f"{provider}:{event.id}"
        async with self._database.session() as session:
            seen = await session.exec(
                select(Engagement.message_id).where(col(Engagement.source_id) == source_id)
            )
            earlier = seen.first()
        if earlier is not None:
            return EventOutcome(event.id, "duplicate", message_id=earlier)
        message = await self._find_message(event.message_ref)
        if message is None:
            return EventOutcome(event.id, "ignored", reason="unknown message")
        if message.channel != "email":
            return EventOutcome(event.id, "ignored", message.message_id, "not an email")
        suppression = _SUPPRESSES.get(kind)
        if suppression is not None:
            await self._withdraw(message.contact_id, suppression[1])
        recorded = await self._record(message, kind, source_id, event, provider)
        return EventOutcome(
            event.id, "applied" if recorded else "duplicate", message_id=message.message_id
        )

    async def _find_message(self, ref: str | None) -> Message | None:
        ref = (ref or "").strip()
        if not ref or len(ref) > _MAX_REF:
            return None
        bare = ref.removeprefix("<").removesuffix(">")
        async with self._database.session() as session:
            ours = await session.get(Message, ref)
            if ours is not None:
                return ours
            # Mailgun drops the angle brackets we store; other senders keep them.
            # Unindexed column: a scan per event until an index on it lands.
            query = select(Message).where(col(Message.provider_message_id).in_([bare, f"<{bare}>"]))
            return (await session.exec(query.limit(1))).first()

    async def _withdraw(self, contact_id: str, source: str) -> None:
        # ConsentService only names its own sources ("api", "link") in its type; the value is
        # stored as the event's `source` property as is.
        try:
            await self._consent.change(contact_id, {"email": False}, source=cast(Source, source))
        except UnknownContactError:
            logger.warning("Feedback for a message of unknown contact %s", contact_id)

    async def _record(
        self,
        message: Message,
        kind: str,
        source_id: str,
        event: FeedbackEvent,
        provider: Provider,
    ) -> bool:
        """The engagement row and the message's and contact's columns, in one transaction;
        False if a concurrent request recorded the same event first."""
        detail: dict[str, Any] = {"provider": provider, "type": event.type, **event.detail}
        if event.bounce is not None:
            detail["bounce"] = event.bounce
        async with self._database.session() as session:
            session.add(
                Engagement(
                    message_id=message.message_id,
                    kind=kind,
                    source_id=source_id,
                    detail=detail,
                    at=event.at,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return False
            stamp = _STAMPS.get(kind)
            if stamp is not None:
                column = getattr(Message, stamp)
                await session.exec(
                    update(Message)
                    .where(col(Message.message_id) == message.message_id, column.is_(None))
                    .values({stamp: event.at})
                )
            suppression = _SUPPRESSES.get(kind)
            if suppression is not None:
                await session.exec(_suppress(message.contact_id, suppression[0]))
            await session.commit()
        return True

    async def _claim(self, token_id: str) -> bool:
        async with self._database.session() as session:
            session.add(
                Engagement(
                    message_id="",
                    kind=SIGNATURE_TOKEN,
                    source_id=token_id,
                    at=datetime.now(UTC),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    async def _release(self, token_id: str) -> None:
        async with self._database.session() as session:
            await session.exec(delete(Engagement).where(col(Engagement.source_id) == token_id))
            await session.commit()


def _kind(event: FeedbackEvent) -> str | None:
    if event.type == "delivered":
        return DELIVERED
    if event.type == "complained":
        return COMPLAINED
    if event.type == "bounced":
        return {"hard": BOUNCED, "soft": SOFT_BOUNCED}.get(event.bounce or "")
    return None


def _suppress(contact_id: str, reason: str) -> Any:
    """Record why email is suppressed. A hard bounce outranks a complaint (it also stops
    transactional mail); a complaint does not overwrite a hard bounce."""
    query = update(Contact).where(col(Contact.contact_id) == contact_id)
    if reason != HARD_BOUNCE:
        query = query.where(col(Contact.email_suppressed).is_(None))
    return query.values(email_suppressed=reason, updated_at=datetime.now(UTC))
