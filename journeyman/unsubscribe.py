"""Consent changes, from the subscriptions API and from one-click unsubscribe links.

A change of consent is a fact journeys react to: every change from true to false records an
`unsubscribed` event (`subscribed` for false to true), stored and routed like any event, so a
journey that declares `unsubscribed` among its exits ends at once.

Why a change is recorded once and routed at least once:
- The consent column is updated compare-and-set (`WHERE email_consent = true`) in the same
  transaction that stores its event. Of two concurrent or retried requests only the one that
  changed the column stores an event; the other finds nothing to change and records nothing.
- The event id is derived from the contact, the channel, the direction and the
  `consent_updated_at` the change wrote, so the event is a function of the change itself.
- Routing happens after the commit. If it fails (Temporal down), the event stays stored with
  `routed_at` empty; the next consent request for the contact routes it again under the same
  id, which the journeys de-duplicate.

`unsubscribe_url` is what the send activity puts in messages and in `List-Unsubscribe`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.signing import InvalidToken, Signer, UnsubscribeClaim
from persistence import Contact, Database, EventRecord
from persistence.models import CONSENT_CHANNELS, as_utc
from workflows.contracts import StartJourneyResult

UNSUBSCRIBED = "unsubscribed"
SUBSCRIBED = "subscribed"
CONSENT_EVENTS = (UNSUBSCRIBED, SUBSCRIBED)
# Names the event ids; any fixed UUID would do, it only has to never change.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-4a0e-4c43-9d1b-3a3d6f0c2a51")

Source = Literal["api", "link"]

logger = logging.getLogger("journeyman.unsubscribe")

__all__ = [
    "CONSENT_EVENTS",
    "ConsentEvent",
    "ConsentService",
    "ConsentState",
    "InvalidToken",
    "UnknownContactError",
    "consent_event_id",
    "unsubscribe_url",
]


def unsubscribe_url(settings: Settings, contact_id: str, channel: str) -> str:
    """The signed one-click link that unsubscribes `contact_id` from marketing on `channel`."""
    token = Signer(settings.secret_key).unsubscribe_token(contact_id, channel)
    return f"{settings.public_url.rstrip('/')}/u/{token}"


def consent_event_id(contact_id: str, channel: str, name: str, changed_at: datetime) -> str:
    """The id of the event recording one consent change (readable prefix, unique suffix).

    The contact id is hashed in rather than spelled out: it may be 200 characters, as long as
    an event id may be.
    """
    stamp = changed_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    digest = uuid.uuid5(_EVENT_ID_NAMESPACE, f"{contact_id}\n{channel}\n{name}\n{stamp}")
    return f"{name}:{channel}:{stamp}:{digest.hex}"


class UnknownContactError(LookupError):
    def __init__(self, contact_id: str) -> None:
        super().__init__(f"unknown contact '{contact_id}'")
        self.contact_id = contact_id


@dataclass
class ConsentEvent:
    """A consent event this request recorded, or an earlier one it finished routing."""

    id: str
    name: str
    channel: str
    journeys: list[StartJourneyResult]


@dataclass
class ConsentState:
    contact_id: str
    consent: dict[str, bool]
    consent_updated_at: datetime | None
    events: list[ConsentEvent]


class ConsentService:
    def __init__(
        self, *, database: Database, enrollments: EnrollmentService, settings: Settings
    ) -> None:
        self._database = database
        self._enrollments = enrollments
        self._signer = Signer(settings.secret_key)
        self._max_age = timedelta(days=settings.unsubscribe_link_max_age_days)

    def read_link(self, token: str) -> UnsubscribeClaim:
        """The contact and channel a link names; InvalidToken if forged, foreign or expired."""
        claim = self._signer.read_unsubscribe(token, self._max_age)
        if claim.channel not in CONSENT_CHANNELS:
            raise InvalidToken("this link is not valid")
        return claim

    async def current(self, contact_id: str) -> ConsentState:
        async with self._database.session() as session:
            contact = await _contact(session, contact_id)
        return _state(contact, [])

    async def unsubscribe(self, claim: UnsubscribeClaim) -> ConsentState:
        """What `POST /u/{token}` does, once `read_link` accepted the token: idempotent, a
        second call records nothing.

        Once the change is committed the person is unsubscribed, and sends check consent
        anyway; so a routing failure is logged rather than shown to someone who cannot retry
        (a mail client's one-click POST). The event is routed by the contact's next change.
        """
        await self._record(claim.contact_id, {claim.channel: False}, "link")
        try:
            events = await self._route_pending(claim.contact_id)
        except (RPCError, RuntimeError) as err:
            logger.warning("Unsubscribe of %s recorded, not routed: %s", claim.contact_id, err)
            events = []
        return await self._with_events(claim.contact_id, events)

    async def change(
        self, contact_id: str, wanted: Mapping[str, bool], *, source: Source
    ) -> ConsentState:
        """Set consent per channel; record and route an event for every actual change."""
        unknown = sorted(set(wanted) - set(CONSENT_CHANNELS))
        if unknown:
            raise ValueError(f"no consent on channels {unknown}")
        await self._record(contact_id, wanted, source)
        events = await self._route_pending(contact_id)
        return await self._with_events(contact_id, events)

    async def _record(self, contact_id: str, wanted: Mapping[str, bool], source: Source) -> None:
        now = datetime.now(UTC)
        async with self._database.session() as session:
            await _contact(session, contact_id)
            for channel, subscribed in wanted.items():
                column = getattr(Contact, f"{channel}_consent")
                changed = await session.exec(
                    update(Contact)
                    .where(col(Contact.contact_id) == contact_id, column == (not subscribed))
                    .values(
                        {
                            f"{channel}_consent": subscribed,
                            "consent_updated_at": now,
                            "updated_at": now,
                        }
                    )
                )
                if changed.rowcount != 1:
                    continue  # already as wanted (or another request just changed it)
                name = SUBSCRIBED if subscribed else UNSUBSCRIBED
                session.add(
                    EventRecord(
                        id=consent_event_id(contact_id, channel, name, now),
                        contact_id=contact_id,
                        name=name,
                        properties={"channel": channel, "source": source},
                        occurred_at=now,
                        received_at=now,
                    )
                )
            await session.commit()

    async def _route_pending(self, contact_id: str) -> list[ConsentEvent]:
        """Route this contact's consent events that no request has routed yet, oldest first."""
        query = (
            select(EventRecord)
            .where(
                col(EventRecord.contact_id) == contact_id,
                col(EventRecord.name).in_(CONSENT_EVENTS),
                col(EventRecord.routed_at).is_(None),
            )
            .order_by(col(EventRecord.occurred_at), col(EventRecord.id))
        )
        async with self._database.session() as session:
            pending = (await session.exec(query)).all()
        routed: list[ConsentEvent] = []
        for row in pending:
            journeys = await self._enrollments.route_and_record(row.as_event())
            routed.append(
                ConsentEvent(
                    id=row.id,
                    name=row.name,
                    channel=str(row.properties.get("channel", "")),
                    journeys=journeys,
                )
            )
        return routed

    async def _with_events(self, contact_id: str, events: list[ConsentEvent]) -> ConsentState:
        async with self._database.session() as session:
            return _state(await _contact(session, contact_id), events)


async def _contact(session: AsyncSession, contact_id: str) -> Contact:
    contact = await session.get(Contact, contact_id, populate_existing=True)
    if contact is None:
        raise UnknownContactError(contact_id)
    return contact


def _state(contact: Contact, events: list[ConsentEvent]) -> ConsentState:
    return ConsentState(
        contact_id=contact.contact_id,
        consent={channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS},
        consent_updated_at=as_utc(contact.consent_updated_at)
        if contact.consent_updated_at
        else None,
        events=events,
    )
