"""Applying events to the stored score: exact decay, order independence, daily caps,
idempotency, hysteresis, and what a crossing writes (event, lifecycle stage, CRM mark)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from sqlmodel import col, select

from journeyman.scoring.decay import decayed, falls_below_at
from journeyman.scoring.rules import ScoreRule, startswith
from journeyman.scoring.store import MQL, ScoreStore, current_score, emitted_event_id
from persistence import Contact, CrmFieldState, CrmOutbox, Database, EventRecord, ScoreChange

from .conftest import HALF_LIFE, T0, event, plain_model

DAY = timedelta(days=1)


async def history(database: Database, contact_id: str) -> list[ScoreChange]:
    async with database.session() as session:
        query = (
            select(ScoreChange)
            .where(col(ScoreChange.contact_id) == contact_id)
            .order_by(col(ScoreChange.id))
        )
        return list((await session.exec(query)).all())


async def score_at(database: Database, contact_id: str, at: datetime) -> float | None:
    async with database.session() as session:
        return await current_score(session, contact_id, at, HALF_LIFE)


def test_decay_halves_points_every_half_life_and_finds_the_crossing() -> None:
    assert decayed(40, T0, T0 + HALF_LIFE, HALF_LIFE) == pytest.approx(20)
    assert decayed(40, T0, T0 + 3 * HALF_LIFE, HALF_LIFE) == pytest.approx(5)
    assert decayed(40, T0, T0 - DAY, HALF_LIFE) == 40  # no growth backwards
    assert decayed(-30, T0, T0 + HALF_LIFE, HALF_LIFE) == pytest.approx(-15)
    crossing = falls_below_at(60, T0, 30, HALF_LIFE)
    assert crossing == T0 + HALF_LIFE
    assert falls_below_at(29, T0, 30, HALF_LIFE) is None


async def test_the_score_is_every_events_points_decayed_on_its_own(
    database: Database, contact_id: str
) -> None:
    store = ScoreStore(database, plain_model())
    times = [T0, T0 + 2 * DAY, T0 + 9 * DAY]
    for at, name in zip(times, ["plus_20", "plus_35", "minus_10"], strict=True):
        await store.apply_event(event(contact_id, name, at), at)
    read = T0 + 40 * DAY
    expected = sum(
        p * 0.5 ** ((read - at) / HALF_LIFE) for p, at in zip([20, 35, -10], times, strict=True)
    )
    assert await score_at(database, contact_id, read) == pytest.approx(expected, rel=1e-12)


async def test_the_order_of_application_does_not_change_the_score(
    database: Database, contact_id: str
) -> None:
    store = ScoreStore(database, plain_model())
    events = [("plus_20", T0), ("plus_5", T0 + 5 * DAY), ("minus_10", T0 + 11 * DAY)]
    in_order, reversed_ = f"{contact_id}-a", f"{contact_id}-b"
    for name, at in events:
        await store.apply_event(event(in_order, name, at), at)
    for name, at in reversed(events):
        await store.apply_event(event(reversed_, name, at), at)
    read = T0 + 20 * DAY
    a, b = await score_at(database, in_order, read), await score_at(database, reversed_, read)
    assert a == pytest.approx(b, rel=1e-12)
    # A late event is applied at the newest time seen so far, decayed for its age.
    late = (await history(database, reversed_))[-1]
    assert late.at.replace(tzinfo=None) == (T0 + 11 * DAY).replace(tzinfo=None)


async def test_a_score_may_go_negative(database: Database, contact_id: str) -> None:
    store = ScoreStore(database, plain_model())
    await store.apply_event(event(contact_id, "plus_5"), T0)
    state = await store.apply_event(event(contact_id, "minus_30"), T0)
    assert state.score == pytest.approx(-25)
    assert await score_at(database, contact_id, T0 + HALF_LIFE) == pytest.approx(-12.5)


async def test_the_same_event_id_applies_once(database: Database, contact_id: str) -> None:
    store = ScoreStore(database, plain_model())
    first = await store.apply_event(event(contact_id, "plus_20", event_id="e-dup"), T0)
    again = await store.apply_event(event(contact_id, "plus_20", event_id="e-dup"), T0)
    assert (first.already_applied, again.already_applied) == (False, True)
    assert again.score == pytest.approx(20)
    assert [c.event_id for c in await history(database, contact_id)] == ["e-dup"]


async def test_an_event_no_rule_scores_records_nothing(database: Database, contact_id: str) -> None:
    store = ScoreStore(database, plain_model())
    state = await store.apply_event(event(contact_id, "order_placed"), T0)
    assert state.score == 0
    assert await history(database, contact_id) == []


async def test_a_daily_cap_limits_a_rules_points_per_utc_day(
    database: Database, contact_id: str
) -> None:
    rules = (
        ScoreRule(
            "pricing", "page_viewed", 20, where=[startswith("path", "/pricing")], daily_cap=50
        ),
        ScoreRule("any_page", "page_viewed", 1),
    )
    store = ScoreStore(database, plain_model(rules))
    pricing = {"path": "/pricing"}
    morning = T0.replace(hour=8)
    for minutes in range(4):  # 20 + 20 + 10 (cap reached) + 0
        at = morning + timedelta(minutes=minutes)
        await store.apply_event(event(contact_id, "page_viewed", at, pricing), at)
    next_day = morning + DAY
    await store.apply_event(event(contact_id, "page_viewed", next_day, pricing), next_day)
    changes = await history(database, contact_id)
    assert [c.rule_points for c in changes] == [
        {"pricing": 20, "any_page": 1},
        {"pricing": 20, "any_page": 1},
        {"pricing": 10, "any_page": 1},
        {"pricing": 0, "any_page": 1},
        {"pricing": 20, "any_page": 1},
    ]
    assert [c.delta for c in changes] == [21, 21, 11, 1, 21]


async def test_thresholds_have_hysteresis(database: Database, contact_id: str) -> None:
    """35 -> 55 qualifies; swinging between 35 and 55 emits nothing more; under 30
    disqualifies; 55 again qualifies again. (Half-life aside: all at one instant.)"""
    store = ScoreStore(database, plain_model())
    steps = ["plus_35", "plus_20", "minus_20", "plus_20", "minus_20", "plus_20", "minus_30"]
    steps += ["plus_35"]
    for name in steps:
        await store.apply_event(event(contact_id, name), T0)
    changes = await history(database, contact_id)
    assert [round(c.score) for c in changes] == [35, 55, 35, 55, 35, 55, 25, 60]
    assert [c.emitted for c in changes] == [
        None,
        "lead.qualified",
        None,
        None,
        None,
        None,
        "lead.disqualified",
        "lead.qualified",
    ]


async def test_a_crossing_stores_its_event_and_marks_the_contact(
    database: Database, contact_id: str
) -> None:
    store = ScoreStore(database, plain_model())
    await store.apply_event(event(contact_id, "plus_35"), T0)
    cause = event(contact_id, "plus_20")
    state = await store.apply_event(cause, T0)
    assert (state.qualified, state.emitted) == (True, ["lead.qualified"])
    assert state.falls_below_at == T0 + HALF_LIFE * math.log2(55 / 30)
    change = (await history(database, contact_id))[-1]
    assert change.id is not None
    async with database.session() as session:
        emitted = await session.get(
            EventRecord, emitted_event_id("lead.qualified", contact_id, change.id)
        )
        contact = await session.get(Contact, contact_id)
        outbox = await session.get(CrmOutbox, contact_id)
        fields = (
            await session.exec(
                select(CrmFieldState.field).where(col(CrmFieldState.contact_id) == contact_id)
            )
        ).all()
    assert emitted is not None
    assert emitted.name == "lead.qualified"
    assert emitted.properties == {"score": 55.0, "cause": cause.id}
    assert emitted.routing is None  # routing is the activity's job, after the commit
    assert contact is not None and contact.lifecycle_stage == MQL
    assert outbox is not None and outbox.status == "pending"
    assert sorted(fields) == ["lifecycle_stage", "score"]
    assert [e.id for e in await store.pending_threshold_events(contact_id)] == [emitted.id]


async def test_qualification_never_downgrades_the_lifecycle_stage(
    database: Database, contact_id: str
) -> None:
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, lifecycle_stage="customer"))
        await session.commit()
    store = ScoreStore(database, plain_model())
    state = await store.apply_event(event(contact_id, "plus_35", properties={}), T0)
    state = await store.apply_event(event(contact_id, "plus_20"), T0)
    assert state.qualified
    async with database.session() as session:
        contact = await session.get(Contact, contact_id)
        field_names = (
            await session.exec(
                select(CrmFieldState.field).where(col(CrmFieldState.contact_id) == contact_id)
            )
        ).all()
    assert contact is not None and contact.lifecycle_stage == "customer"
    assert list(field_names) == ["score"]


async def test_decay_alone_disqualifies_once_at_the_check(
    database: Database, contact_id: str
) -> None:
    store = ScoreStore(database, plain_model())
    await store.apply_event(event(contact_id, "plus_35"), T0)
    state = await store.apply_event(event(contact_id, "plus_20"), T0)
    assert state.falls_below_at is not None
    early = await store.check_decay(contact_id, state.falls_below_at - timedelta(minutes=1))
    assert early.qualified and early.emitted == []
    late = state.falls_below_at + timedelta(seconds=1)
    checked = await store.check_decay(contact_id, late)
    repeated = await store.check_decay(contact_id, late)
    later = await store.check_decay(contact_id, late + DAY)
    assert (checked.qualified, checked.emitted) == (False, ["lead.disqualified"])
    assert repeated.already_applied and repeated.emitted == []
    assert later.emitted == []
    decay_rows = [c for c in await history(database, contact_id) if c.event_name == "decay"]
    assert len(decay_rows) == 1
    assert decay_rows[0].score < 30
    assert decay_rows[0].delta == 0


async def test_an_event_after_an_unnoticed_decay_crossing_disqualifies_first(
    database: Database, contact_id: str
) -> None:
    """No decay check ran (e.g. the scorer was behind): the next event still records the
    disqualification before its own points, and may qualify again."""
    store = ScoreStore(database, plain_model())
    await store.apply_event(event(contact_id, "plus_35"), T0)
    await store.apply_event(event(contact_id, "plus_20"), T0)
    later = T0 + 40 * DAY  # 55 -> about 21.8
    state = await store.apply_event(event(contact_id, "plus_35", later), later)
    assert state.emitted == ["lead.disqualified", "lead.qualified"]
    changes = await history(database, contact_id)
    assert [c.emitted for c in changes[-2:]] == ["lead.disqualified", "lead.qualified"]
