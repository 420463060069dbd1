"""The SQL of every segment, and of random compositions, selects exactly the contacts the
Python evaluation selects: on generated data, at several clocks, on PostgreSQL (when
available) and on SQLite."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from journeyman.segments import all_segments, segment_count, segment_page
from journeyman.segments.predicates import (
    ContactFacts,
    Predicate,
    attribute,
    consent,
    contact_field,
    days,
    dormant,
    email_suppressed,
    events,
    known_for,
    prop,
    qualified_score,
    score,
)
from journeyman.segments.query import context
from journeyman.segments.segment import Segment
from journeyman.settings import Settings

from .conftest import CONTACTS, NOWS, Generated

SETTINGS = Settings(score_half_life_days=10, score_qualify_at=50, score_disqualify_below=30)

# Leaves covering every predicate kind and operator, for random compositions.
LEAVES: list[Predicate] = [
    contact_field("email").present(),
    contact_field("timezone").equals("Europe/Paris"),
    contact_field("locale").startswith("fr"),
    contact_field("locale").one_of("en", "en-US"),
    contact_field("lifecycle_stage").present(),
    contact_field("lifecycle_stage").one_of("lead", "customer"),
    consent("email"),
    consent("sms"),
    consent("push"),
    email_suppressed(),
    dormant(),
    known_for(days(30)),
    known_for(timedelta(days=3, hours=5)),
    attribute("plan").equals("pro"),
    attribute("plan").equals(1),
    attribute("plan").one_of("pro", "free", 1),
    attribute("plan").startswith("pro"),
    attribute("plan").exists(),
    attribute("age").compare(">=", 18),
    attribute("age").compare("<", 18),
    attribute("age").compare("==", 18),
    attribute("age").compare("!=", 18),
    attribute("age").equals(True),
    attribute("age").equals(False),
    attribute("age").equals("18"),
    attribute("missing").exists(),
    attribute("birthday").month_day_near(),
    attribute("birthday").month_day_near(days=0),
    attribute("birthday").month_day_near(days=3),
    qualified_score(),
    score(">", 0),
    score("<", 10),
    score(">=", 80.5),
    events(None, within=days(30)).none(),
    events(None, within=days(7)).at_least(3),
    events("product_viewed", within=days(7), where=[prop("category").equals("tv")]).at_least(2),
    events("product_viewed", within=days(7), where=[prop("category").one_of("tv", 5)]).any(),
    events("order_placed", within=days(7)).none(),
    events("order_placed", within=days(30)).at_most(1),
    events("page_viewed", within=timedelta(hours=36)).any(),
    events("email.opened", within=days(14), where=[prop("category").exists()]).count("==", 1),
    events("lead.qualified", within=days(60)).any(),
    events("product_viewed", within=days(30), where=[prop("category").startswith("tv")]).any(),
]


def _random_predicate(rng: random.Random, depth: int) -> Predicate:
    if depth == 0 or rng.random() < 0.3:
        leaf = rng.choice(LEAVES)
        return ~leaf if rng.random() < 0.3 else leaf
    left = _random_predicate(rng, depth - 1)
    right = _random_predicate(rng, depth - 1)
    combined = left & right if rng.random() < 0.5 else left | right
    return ~combined if rng.random() < 0.25 else combined


async def _sql_members(generated: Generated, segment: Segment, now: datetime) -> set[str]:
    async with generated.database.session() as session:
        ids = await segment_page(
            session, segment, now=now, after=None, limit=1_000_000, settings=SETTINGS
        )
    return {i for i in ids if i.startswith(generated.prefix)}


def _python_members(facts: list[ContactFacts], segment: Segment, now: datetime) -> set[str]:
    ctx = context(now, SETTINGS)
    return {f.contact.contact_id for f in facts if segment.predicate.holds(f, ctx)}


async def test_every_definition_selects_in_sql_what_python_selects(generated: Generated) -> None:
    facts = await generated.facts()
    assert len(facts) == CONTACTS
    sizes: dict[str, list[int]] = {}
    for segment in all_segments():
        for now in NOWS:
            expected = _python_members(facts, segment, now)
            assert await _sql_members(generated, segment, now) == expected, (segment.name, now)
            sizes.setdefault(segment.name, []).append(len(expected))
    # The data exercises each definition: members at some clock, never everyone.
    for name, found in sizes.items():
        assert max(found) > 0, name
        assert max(found) < CONTACTS, name


async def test_every_leaf_and_its_negation_agree(generated: Generated) -> None:
    facts = await generated.facts()
    for n, leaf in enumerate(LEAVES):
        for predicate in (leaf, ~leaf):
            segment = Segment(f"leaf_{n}", "", predicate)
            for now in NOWS[:3]:
                expected = _python_members(facts, segment, now)
                found = await _sql_members(generated, segment, now)
                assert found == expected, (predicate.describe(), now)


async def test_random_compositions_agree(generated: Generated) -> None:
    facts = await generated.facts()
    rng = random.Random(7)
    nonempty = 0
    for n in range(60):
        segment = Segment(f"random_{n}", "", _random_predicate(rng, depth=3))
        now = rng.choice(NOWS)
        expected = _python_members(facts, segment, now)
        found = await _sql_members(generated, segment, now)
        assert found == expected, (segment.definition, now)
        nonempty += 0 < len(expected) < CONTACTS
    assert nonempty >= 20  # compositions that actually split the contacts


async def test_paging_walks_every_member_once_in_order(generated: Generated) -> None:
    segment = Segment("paged", "", ~email_suppressed() & consent("email"))
    now = NOWS[0]
    expected = _python_members(await generated.facts(), segment, now)
    seen: list[str] = []
    after: str | None = None
    async with generated.database.session() as session:
        while True:
            page = await segment_page(
                session, segment, now=now, after=after, limit=17, settings=SETTINGS
            )
            if not page:
                break
            assert len(page) <= 17
            seen += page
            after = page[-1]
        total = await segment_count(session, segment, now=now, settings=SETTINGS)
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == total
    assert {i for i in seen if i.startswith(generated.prefix)} == expected
