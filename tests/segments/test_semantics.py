"""What the definitions mean, on hand-made contacts (SQL through `is_member`, and Python)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeyman.segments import UnknownSegmentError, get_segment, is_member
from journeyman.segments.predicates import ContactFacts, attribute
from journeyman.segments.query import context
from journeyman.segments.segment import Segment
from journeyman.settings import Settings
from persistence import Contact, Database, EventRecord, LeadScore

from .conftest import Generated, unseed

SETTINGS = Settings(score_half_life_days=10, score_qualify_at=50, score_disqualify_below=30)
NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
PREFIX = "sem-"


@pytest.fixture(autouse=True)
async def _cleanup(database: Database) -> AsyncIterator[None]:
    """Other folders count segment members in the session database: leave it as found."""
    yield
    await unseed(Generated(database, PREFIX))


async def _contact(
    database: Database,
    *,
    events: list[tuple[str, datetime, dict[str, Any]]] = (),  # type: ignore[assignment]
    score: tuple[float, datetime] | None = None,
    **fields: Any,
) -> ContactFacts:
    contact_id = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "email": f"{contact_id}@example.com",
        "created_at": NOW - timedelta(days=90),
        "attributes": {},
    } | fields
    contact = Contact(contact_id=contact_id, **values)
    records = [
        EventRecord(
            id=f"{contact_id}:{n}",
            contact_id=contact_id,
            name=name,
            properties=props,
            occurred_at=at,
        )
        for n, (name, at, props) in enumerate(events)
    ]
    row = None
    if score is not None:
        row = LeadScore(contact_id=contact_id, points=score[0], as_of=score[1])
    async with database.session() as session:
        session.add(contact)
        session.add_all(records)
        if row is not None:
            session.add(row)
        await session.commit()
    return ContactFacts(contact, records, row)


async def _member(database: Database, name: str, facts: ContactFacts, now: datetime) -> bool:
    """Membership by SQL, checked against the Python reading."""
    async with database.session() as session:
        found = await is_member(session, name, facts.contact.contact_id, now=now, settings=SETTINGS)
    assert found == get_segment(name).predicate.holds(facts, context(now, SETTINGS))
    return found


async def test_inactive_means_no_activity_in_30_days_and_reachable(database: Database) -> None:
    day = timedelta(days=1)
    quiet = await _contact(database, events=[("page_viewed", NOW - 31 * day, {})])
    assert await _member(database, "inactive_30d", quiet, NOW)
    active = await _contact(database, events=[("page_viewed", NOW - 29 * day, {})])
    assert not await _member(database, "inactive_30d", active, NOW)
    # The window is (now - 30 days, now]: an event exactly 30 days ago is outside it.
    edge = await _contact(database, events=[("page_viewed", NOW - 30 * day, {})])
    assert await _member(database, "inactive_30d", edge, NOW)
    # Lead thresholds follow behaviour, they are not activity.
    scored = await _contact(database, events=[("lead.qualified", NOW - day, {})])
    assert await _member(database, "inactive_30d", scored, NOW)
    # An event after `now` does not count at `now`, and does at a later clock.
    later = await _contact(database, events=[("page_viewed", NOW + day, {})])
    assert await _member(database, "inactive_30d", later, NOW)
    assert not await _member(database, "inactive_30d", later, NOW + 2 * day)
    for unreachable in (
        {"email": None},
        {"email": ""},
        {"email_consent": False},
        {"email_suppressed": "hard_bounce"},
        {"dormant_at": NOW - 3 * day},
        {"created_at": NOW - 10 * day},
    ):
        contact = await _contact(database, **unreachable)
        assert not await _member(database, "inactive_30d", contact, NOW), unreachable


async def test_tv_browsers_viewed_tv_twice_in_7_days_and_did_not_order(database: Database) -> None:
    day = timedelta(days=1)
    tv = {"category": "tv"}
    browser = await _contact(
        database, events=[("product_viewed", NOW - day, tv), ("product_viewed", NOW - 6 * day, tv)]
    )
    assert await _member(database, "tv_browsers_not_buyers", browser, NOW)
    once = await _contact(
        database,
        events=[("product_viewed", NOW - day, tv), ("product_viewed", NOW - day, {"category": 5})],
    )
    assert not await _member(database, "tv_browsers_not_buyers", once, NOW)
    buyer = await _contact(
        database,
        events=[
            ("product_viewed", NOW - day, tv),
            ("product_viewed", NOW - 2 * day, tv),
            ("order_placed", NOW - 3 * day, {}),
        ],
    )
    assert not await _member(database, "tv_browsers_not_buyers", buyer, NOW)
    # Eight days later the views are out of the window.
    assert not await _member(database, "tv_browsers_not_buyers", browser, NOW + 8 * day)


async def test_qualified_leads_use_the_score_decayed_to_now(database: Database) -> None:
    # 100 points ten days (one half-life) ago are worth exactly 50 now: the qualify line.
    lead = await _contact(database, score=(100.0, NOW - timedelta(days=10)))
    assert await _member(database, "qualified_leads", lead, NOW)
    assert not await _member(database, "qualified_leads", lead, NOW + timedelta(minutes=1))
    # A score stored as of a later time than `now` is not decayed backwards.
    future = await _contact(database, score=(60.0, NOW + timedelta(days=1)))
    assert await _member(database, "qualified_leads", future, NOW)
    never = await _contact(database)
    assert not await _member(database, "qualified_leads", never, NOW)


@pytest.mark.parametrize(
    ("now", "member", "outsider"),
    [
        # 28 February of a non-leap year: 29 February birthdays are celebrated that day.
        (datetime(2027, 2, 28, 10, tzinfo=UTC), ["02-29", "1992-02-29", "03-01", "02-27"], []),
        # In a leap year they wait for their own day (27 Feb +- 1 day ends on the 28th).
        (datetime(2028, 2, 27, 10, tzinfo=UTC), ["02-28", "1990-02-26"], ["02-29", "03-01"]),
        (datetime(2028, 3, 1, 0, 0, tzinfo=UTC), ["02-29", "03-02"], ["02-28"]),
        # Around the new year.
        (datetime(2027, 1, 1, 0, 30, tzinfo=UTC), ["12-31", "1980-01-02"], ["01-03", "12-30"]),
        # Malformed values never match.
        (datetime(2027, 2, 28, tzinfo=UTC), [], ["2-28", "1990/02/28", "02-28 ", "0228"]),
    ],
)
async def test_birthday_candidates_are_within_a_day_of_the_utc_date(
    database: Database, now: datetime, member: list[str], outsider: list[str]
) -> None:
    for birthday in member:
        contact = await _contact(database, attributes={"birthday": birthday})
        assert await _member(database, "birthday_candidates", contact, now), birthday
    for birthday in outsider:
        contact = await _contact(database, attributes={"birthday": birthday})
        assert not await _member(database, "birthday_candidates", contact, now), birthday
    number = await _contact(database, attributes={"birthday": 228})
    assert not await _member(database, "birthday_candidates", number, now)


async def test_values_are_typed_as_in_json(database: Database) -> None:
    adult = attribute("age").compare(">=", 18)
    ctx = context(NOW, SETTINGS)
    for age, expected in ((18, True), (18.5, True), ("18", False), (True, False), (None, False)):
        facts = await _contact(database, attributes={"age": age})
        assert adult.holds(facts, ctx) is expected, age


async def test_an_unknown_segment_is_a_lookup_error(database: Database) -> None:
    with pytest.raises(UnknownSegmentError) as caught:
        get_segment("nobody")
    assert isinstance(caught.value, LookupError)
    async with database.session() as session:
        with pytest.raises(UnknownSegmentError):
            await is_member(session, "nobody", "c-1", now=NOW)


def test_definitions_read_like_sentences() -> None:
    text = get_segment("inactive_30d").definition
    assert text == (
        "email is set and consents to email and not email suppressed and not dormant and "
        "contact for at least 30 days and no event in the last 30 days"
    )
    assert (
        "'product_viewed' with properties.category = 'tv' at least 2 times in the last 7 days"
        in (get_segment("tv_browsers_not_buyers").definition)
    )


def test_malformed_predicates_are_refused_when_defined() -> None:
    with pytest.raises(ValueError, match="identifiers"):
        attribute("a.b").exists()
    with pytest.raises(ValueError, match="needs a value"):
        attribute("plan").one_of()
    with pytest.raises(ValueError, match="lower_snake_case"):
        Segment("Bad Name", "", attribute("plan").exists())
