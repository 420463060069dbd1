"""Opens and clicks from the tracking links: recorded on the message, routed as events.

Counting, per message:
- every hit is one `Engagement` row (`opened` or `clicked`), so raw counts stay available;
- `opened_at` is set by the first open only, compare-and-set (`WHERE opened_at IS NULL`), so of
  two concurrent first opens one wins; that winner alone stores the `email.opened` event, whose
  id is `opened:{message_id}`: the event is a function of the message, routed once;
- every click adds one to `clicks` in SQL (`clicks = clicks + 1`, never read-modify-write),
  sets `first_clicked_at` if empty and stores its own `email.clicked` event. Unique clicks are
  derived: messages with `clicks > 0`. A click also counts as the open when none was seen
  (images are often blocked), with the same compare-and-set and the same `email.opened` event.

The row changes and their events commit in one transaction; routing happens after the commit.
A routing failure (Temporal down) is logged, not shown to the person clicking: they still get
their page. The event stays stored with `routed_at` empty; the contact's next open or click
routes it, under its stored id (which the journeys de-duplicate).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from journeyman.dormancy import wake
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.signing import InvalidToken, Signer, TrackingClaim, read_tracking
from persistence import Database, Engagement, EventRecord, Message

EMAIL_OPENED = "email.opened"
EMAIL_CLICKED = "email.clicked"
TRACKING_EVENTS = (EMAIL_OPENED, EMAIL_CLICKED)
OPENED = "opened"
CLICKED = "clicked"
_EVENT_ID_MAX = 200  # events.id
_URL_MAX = 2000  # engagements.url

logger = logging.getLogger("journeyman.engagement")

__all__ = [
    "EMAIL_CLICKED",
    "EMAIL_OPENED",
    "EngagementService",
    "InvalidToken",
    "TrackedHit",
    "UnknownLinkError",
    "opened_event_id",
]


class UnknownLinkError(LookupError):
    """A well-signed token whose message or link index is not on record."""


@dataclass(frozen=True)
class TrackedHit:
    message_id: str
    first_open: bool
    # Set for clicks: where to send the person, and which link it was.
    url: str | None = None
    link_index: int | None = None
    # The event ids this hit routed (its own, and any an earlier hit left unrouted).
    routed: tuple[str, ...] = ()


def opened_event_id(message_id: str) -> str:
    """The one `email.opened` event of a message (hashed if the message id is too long)."""
    readable = f"opened:{message_id}"
    if len(readable) <= _EVENT_ID_MAX:
        return readable
    return f"opened:sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"


class EngagementService:
    def __init__(
        self, *, database: Database, enrollments: EnrollmentService, settings: Settings
    ) -> None:
        self._database = database
        self._enrollments = enrollments
        self._signer = Signer(settings.secret_key)
        self._max_age = timedelta(days=settings.tracking_link_max_age_days)

    def read_open(self, token: str) -> TrackingClaim:
        """The message an open pixel names; InvalidToken if forged, edited, foreign or expired."""
        return read_tracking(self._signer, token, click=False, max_age=self._max_age)

    def read_click(self, token: str) -> TrackingClaim:
        """The message and link index a click URL names; InvalidToken like `read_open`."""
        return read_tracking(self._signer, token, click=True, max_age=self._max_age)

    async def opened(self, claim: TrackingClaim) -> TrackedHit:
        """Record one open; the first one sets `opened_at` and emits `email.opened`."""
        now = datetime.now(UTC)
        async with self._database.session() as session:
            message = await _message(session, claim.message_id)
            session.add(_engagement(message, OPENED, now))
            first = await self._first_open(session, message, now)
            await session.commit()
        routed = await self._route(message.contact_id)
        return TrackedHit(message_id=message.message_id, first_open=first, routed=tuple(routed))

    async def clicked(self, claim: TrackingClaim) -> TrackedHit:
        """Record one click and answer the URL to redirect to; UnknownLinkError if the index
        is not one of the message's links (nothing is recorded then)."""
        now = datetime.now(UTC)
        index = claim.link if claim.link is not None else -1
        async with self._database.session() as session:
            message = await _message(session, claim.message_id)
            links = list(message.links or [])
            if not 0 <= index < len(links):
                raise UnknownLinkError(f"message has no link {index}")
            url = str(links[index])
            engagement = _engagement(message, CLICKED, now, url=url, link_index=index)
            session.add(engagement)
            await session.exec(
                update(Message)
                .where(col(Message.message_id) == message.message_id)
                .values(
                    clicks=col(Message.clicks) + 1,
                    first_clicked_at=func.coalesce(col(Message.first_clicked_at), now),
                )
            )
            first = await self._first_open(session, message, now)
            await wake(session, message.contact_id, now)
            click_id = engagement.source_id  # "clicked:<uuid>": this click, and only it
            session.add(
                _event(
                    message,
                    click_id,
                    EMAIL_CLICKED,
                    now,
                    url=url,
                    link_index=index,
                )
            )
            await session.commit()
        routed = await self._route(message.contact_id)
        return TrackedHit(
            message_id=message.message_id,
            first_open=first,
            url=url,
            link_index=index,
            routed=tuple(routed),
        )

    async def _first_open(self, session: AsyncSession, message: Message, now: datetime) -> bool:
        """Set `opened_at` if no open was seen yet; the one request that sets it stores the
        message's `email.opened` event (same transaction as the caller's changes)."""
        changed = await session.exec(
            update(Message)
            .where(
                col(Message.message_id) == message.message_id,
                col(Message.opened_at).is_(None),
            )
            .values(opened_at=now)
        )
        if changed.rowcount != 1:
            return False
        session.add(_event(message, opened_event_id(message.message_id), EMAIL_OPENED, now))
        return True

    async def _route(self, contact_id: str) -> list[str]:
        """Route the contact's tracking events that no hit has routed yet (this hit's, and any
        an earlier hit failed to route), oldest first; failures are logged, not raised.
        Answers the ids routed."""
        query = select(EventRecord).where(
            col(EventRecord.contact_id) == contact_id,
            col(EventRecord.name).in_(TRACKING_EVENTS),
            col(EventRecord.routed_at).is_(None),
        )
        async with self._database.session() as session:
            found = (await session.exec(query)).all()
        # A click's implied open carries the click's time: the open still goes first.
        pending = sorted(found, key=lambda row: (row.occurred_at, row.name != EMAIL_OPENED))
        routed: list[str] = []
        for row in pending:
            try:
                await self._enrollments.route_and_record(row.as_event())
            except (RPCError, RuntimeError) as err:
                logger.warning("Event %s recorded, not routed: %s", row.id, err)
                continue
            routed.append(row.id)
        return routed


async def _message(session: AsyncSession, message_id: str) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise UnknownLinkError("no such message")
    return message


def _engagement(
    message: Message, kind: str, now: datetime, *, url: str | None = None, **detail: Any
) -> Engagement:
    # Every hit is its own fact: a fresh source id (the column is unique for provider events).
    return Engagement(
        message_id=message.message_id,
        kind=kind,
        source_id=f"{kind}:{uuid.uuid4().hex}",
        url=url[:_URL_MAX] if url else None,
        detail=detail,
        at=now,
    )


def _event(message: Message, event_id: str, name: str, now: datetime, **extra: Any) -> EventRecord:
    properties: dict[str, Any] = {
        "journey": message.journey,
        "step": message.step,
        "message_id": message.message_id,
        **extra,
    }
    return EventRecord(
        id=event_id,
        contact_id=message.contact_id,
        name=name,
        properties=properties,
        occurred_at=now,
        received_at=now,
    )
