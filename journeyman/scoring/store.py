"""Lead scores in the database: applying an event, noticing decay, reading the score.

Each change is one transaction that starts by locking the contact (`activities.caps.
lock_contact`), so concurrent events for one contact apply one after the other and none is
lost; different contacts never wait for each other. In that transaction:

- the change is looked up by (contact, event id) first: found means already applied (a retry or
  a duplicate), and nothing changes again (`score_changes` is unique on it as a last guard);
- the score moves: `lead_scores.points` as of `as_of` is decayed to the change's time `at` and
  the event's points (decayed from when it occurred) are added. Decay is linear, so the score
  at any later time equals the sum of every event's points decayed on its own: the order in
  which events are applied does not matter. An event is applied at `at = max(as_of,
  occurred_at)`, so `as_of` never moves back; a late event is simply decayed for its age.
- there is no floor: negative events can take a score below zero (it decays back towards zero
  like any score), so a burst of interest after an unsubscribe has to make up for it;
- a threshold crossing (hysteresis: qualify at `qualify_at`, disqualify under
  `disqualify_below`) stores its `lead.qualified` / `lead.disqualified` event (an `events`
  row with a deterministic id), raises the lifecycle stage on qualification, and marks the
  contact for CRM sync. Routing the emitted event happens after the commit (the caller's job:
  `pending_threshold_events`), and is repeated until the event's `routed_at` is set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.caps import lock_contact
from journeyman.crm.outbox import mark_changed
from journeyman.scoring.contracts import LEAD_DISQUALIFIED, LEAD_QUALIFIED, THRESHOLD_EVENTS
from journeyman.scoring.decay import decayed, falls_below_at
from journeyman.scoring.rules import ScoreRule, ScoringModel
from persistence import Contact, Database, EventRecord, LeadScore, ScoreChange
from persistence.models import as_utc, utcnow
from workflows.contracts import Event

# Stages a qualification may raise to `marketingqualifiedlead`; later stages (sales
# qualified, opportunity, customer...) are never downgraded.
RAISED_ON_QUALIFY = (None, "subscriber", "lead")
MQL = "marketingqualifiedlead"
DECAY_EVENT = "decay"
_EVENT_ID_MAX = 200  # events.id


async def current_score(
    session: AsyncSession, contact_id: str, now: datetime, half_life: timedelta
) -> float | None:
    """The contact's score at `now` (decay applied); None if it was never scored."""
    row = await session.get(LeadScore, contact_id, populate_existing=True)
    if row is None:
        return None
    return decayed(row.points, row.as_of, now, half_life)


@dataclass
class ScoreState:
    """A contact's score as the caller sees it after a change (or a no-op)."""

    contact_id: str
    score: float
    qualified: bool
    # While qualified: when decay alone takes the score under the disqualify line.
    falls_below_at: datetime | None
    emitted: list[str] = field(default_factory=list)
    already_applied: bool = False


class ScoreStore:
    def __init__(self, database: Database, model: ScoringModel) -> None:
        self._database = database
        self._model = model

    @property
    def model(self) -> ScoringModel:
        return self._model

    async def apply_event(self, event: Event, now: datetime) -> ScoreState:
        """Apply the event's points once; `now` stands in for a missing `occurred_at`."""
        occurred = as_utc(event.occurred_at or now)
        rules = self._model.matching(event.name, event.properties)
        contact_id = event.contact_id
        await self._ensure_contact(contact_id)
        async with self._database.session() as session:
            await lock_contact(session, contact_id, dialect=self._database.dialect)
            if await _change(session, contact_id, event.id) is not None:
                await session.rollback()
                return await self._state(contact_id, occurred, already_applied=True)
            if not rules:
                # No rule (any more) scores this event: nothing to record.
                await session.rollback()
                return await self._state(contact_id, occurred)
            score = await session.get(LeadScore, contact_id)
            if score is None:
                score = LeadScore(contact_id=contact_id, points=0.0, as_of=occurred)
                session.add(score)
            at = max(as_utc(score.as_of), occurred)
            emitted: list[str] = []
            if self._decayed_under_line(score, at):
                emitted.append(await self._disqualify_by_decay(session, score, at))
            rule_points = {
                rule.name: await self._capped_points(session, contact_id, rule, at)
                for rule in rules
            }
            delta = sum(rule_points.values())
            points = decayed(score.points, score.as_of, at, self._model.half_life)
            points += decayed(delta, occurred, at, self._model.half_life)
            crossing = self._crossing(score.qualified, points)
            change = ScoreChange(
                contact_id=contact_id,
                event_id=event.id,
                event_name=event.name,
                rule_points=rule_points,
                delta=delta,
                score=points,
                emitted=crossing,
                at=at,
            )
            await self._record(session, score, change, points)
            if crossing is not None:
                emitted.append(crossing)
            await session.commit()
            return self._state_of(score, emitted)

    async def check_decay(self, contact_id: str, now: datetime) -> ScoreState:
        """Disqualify a qualified contact whose score decay alone took under the line by
        `now`; a no-op otherwise (not qualified, still above, or this check already ran)."""
        now = as_utc(now)
        async with self._database.session() as session:
            await lock_contact(session, contact_id, dialect=self._database.dialect)
            if await _change(session, contact_id, _decay_id(now)) is not None:
                await session.rollback()
                return await self._state(contact_id, now, already_applied=True)
            score = await session.get(LeadScore, contact_id)
            if score is None or not self._decayed_under_line(score, now):
                await session.rollback()
                return await self._state(contact_id, now)
            emitted = await self._disqualify_by_decay(session, score, now)
            await session.commit()
            return self._state_of(score, [emitted])

    async def pending_threshold_events(self, contact_id: str) -> list[Event]:
        """The contact's emitted threshold events not routed yet, oldest first."""
        query = (
            select(EventRecord)
            .where(
                col(EventRecord.contact_id) == contact_id,
                col(EventRecord.name).in_(THRESHOLD_EVENTS),
                col(EventRecord.routed_at).is_(None),
            )
            .order_by(col(EventRecord.occurred_at), col(EventRecord.id))
        )
        async with self._database.session() as session:
            return [row.as_event() for row in (await session.exec(query)).all()]

    # ----- one change ------------------------------------------------------------------

    def _decayed_under_line(self, score: LeadScore, at: datetime) -> bool:
        if not score.qualified:
            return False
        now_points = decayed(score.points, score.as_of, at, self._model.half_life)
        return now_points < self._model.disqualify_below

    def _crossing(self, qualified: bool, points: float) -> str | None:
        if not qualified and points >= self._model.qualify_at:
            return LEAD_QUALIFIED
        if qualified and points < self._model.disqualify_below:
            return LEAD_DISQUALIFIED
        return None

    async def _disqualify_by_decay(
        self, session: AsyncSession, score: LeadScore, at: datetime
    ) -> str:
        points = decayed(score.points, score.as_of, at, self._model.half_life)
        change = ScoreChange(
            contact_id=score.contact_id,
            event_id=_decay_id(at),
            event_name=DECAY_EVENT,
            rule_points={},
            delta=0.0,
            score=points,
            emitted=LEAD_DISQUALIFIED,
            at=at,
        )
        await self._record(session, score, change, points)
        return LEAD_DISQUALIFIED

    async def _record(
        self, session: AsyncSession, score: LeadScore, change: ScoreChange, points: float
    ) -> None:
        """Write the change and the new score; store the emitted event, if any; mark the
        contact for CRM sync. All in the caller's transaction."""
        score.points = points
        score.as_of = change.at
        score.updated_at = utcnow()
        fields = ["score"]
        if change.emitted is not None:
            score.qualified = change.emitted == LEAD_QUALIFIED
        session.add(score)
        session.add(change)
        await session.flush()  # the change's id names the emitted event
        if change.emitted is not None:
            assert change.id is not None
            session.add(_emitted_event(change, change.id))
            if change.emitted == LEAD_QUALIFIED and await _raise_stage(session, score.contact_id):
                fields.append("lifecycle_stage")
        await mark_changed(
            session,
            self._database.dialect,
            contact_id=score.contact_id,
            fields=fields,
            at=utcnow(),
        )

    async def _capped_points(
        self, session: AsyncSession, contact_id: str, rule: ScoreRule, at: datetime
    ) -> float:
        """The rule's points, less what its daily cap has left for `at`'s UTC day."""
        if rule.daily_cap is None:
            return float(rule.points)
        day = datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)
        query = select(ScoreChange.rule_points).where(
            col(ScoreChange.contact_id) == contact_id,
            col(ScoreChange.at) >= day,
            col(ScoreChange.at) < day + timedelta(days=1),
        )
        given = sum(abs(float(p.get(rule.name, 0.0))) for p in (await session.exec(query)).all())
        room = max(rule.daily_cap - given, 0.0)
        return math.copysign(min(abs(rule.points), room), rule.points) if room else 0.0

    # ----- reads -----------------------------------------------------------------------

    async def _state(
        self, contact_id: str, at: datetime, *, already_applied: bool = False
    ) -> ScoreState:
        async with self._database.session() as session:
            score = await session.get(LeadScore, contact_id)
        if score is None:
            return ScoreState(contact_id, 0.0, False, None, already_applied=already_applied)
        state = self._state_of(score, [], at=max(as_utc(score.as_of), at))
        state.already_applied = already_applied
        return state

    def _state_of(
        self, score: LeadScore, emitted: list[str], *, at: datetime | None = None
    ) -> ScoreState:
        as_of = as_utc(score.as_of)
        points = decayed(score.points, as_of, at or as_of, self._model.half_life)
        below = (
            falls_below_at(score.points, as_of, self._model.disqualify_below, self._model.half_life)
            if score.qualified
            else None
        )
        return ScoreState(score.contact_id, points, score.qualified, below, emitted)

    async def _ensure_contact(self, contact_id: str) -> None:
        """A bare contact row, so that the lock has a row to hold (PostgreSQL locks rows)."""
        now = utcnow()
        values: dict[str, Any] = {
            "contact_id": contact_id,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        insert: Any = postgresql.insert if self._database.dialect == "postgresql" else sqlite.insert
        async with self._database.session() as session:
            await session.exec(insert(Contact).values(**values).on_conflict_do_nothing())
            await session.commit()


async def score_history(
    session: AsyncSession, contact_id: str, limit: int
) -> Sequence[ScoreChange]:
    """The contact's score changes, newest first."""
    query = (
        select(ScoreChange)
        .where(col(ScoreChange.contact_id) == contact_id)
        .order_by(col(ScoreChange.at).desc(), col(ScoreChange.id).desc())
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def _change(session: AsyncSession, contact_id: str, event_id: str) -> ScoreChange | None:
    query = select(ScoreChange).where(
        col(ScoreChange.contact_id) == contact_id, col(ScoreChange.event_id) == event_id
    )
    return (await session.exec(query)).first()


async def _raise_stage(session: AsyncSession, contact_id: str) -> bool:
    """Lifecycle stage to MQL unless the contact is already further along; True if changed."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.lifecycle_stage not in RAISED_ON_QUALIFY:
        return False
    contact.lifecycle_stage = MQL
    contact.updated_at = utcnow()
    session.add(contact)
    return True


def _decay_id(at: datetime) -> str:
    return f"{DECAY_EVENT}:{as_utc(at).isoformat()}"


def emitted_event_id(name: str, contact_id: str, change_id: int) -> str:
    """Deterministic: a retry that finds the change finds this event too."""
    plain = f"{name}:{contact_id}:{change_id}"
    if len(plain) <= _EVENT_ID_MAX:
        return plain
    digest = hashlib.sha256(contact_id.encode()).hexdigest()[:32]
    return f"{name}:{digest}:{change_id}"


def _emitted_event(change: ScoreChange, change_id: int) -> EventRecord:
    assert change.emitted is not None
    now = utcnow()
    return EventRecord(
        id=emitted_event_id(change.emitted, change.contact_id, change_id),
        contact_id=change.contact_id,
        name=change.emitted,
        properties={"score": round(change.score, 4), "cause": change.event_id},
        occurred_at=change.at,
        received_at=now,
    )
