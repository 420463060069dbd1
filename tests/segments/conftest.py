"""Generated contacts (seeded): attributes of every JSON type, consent, suppression, dormancy,
scores and events around `BASE`, stored in a database and read back for the Python side."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, delete, select

from journeyman.segments.predicates import ContactFacts
from persistence import (
    Contact,
    Database,
    EventRecord,
    LeadScore,
    SegmentMembership,
    create_database,
    migrate,
)

# Microseconds on purpose: windows are compared to the microsecond on both dialects.
BASE = datetime(2027, 2, 27, 12, 0, 0, 123456, tzinfo=UTC)
# Several clocks: the data's own day, the days around 28 February in a non-leap year, before
# most events, long after them, and a leap year's 29 February.
NOWS = [
    BASE,
    BASE + timedelta(days=1, hours=3),
    BASE + timedelta(days=2),
    BASE - timedelta(days=5),
    BASE + timedelta(days=20),
    datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC),
    datetime(2028, 2, 27, 0, 0, tzinfo=UTC),
]
CONTACTS = 300

EVENT_NAMES = [
    *["product_viewed"] * 5,
    "order_placed",
    "page_viewed",
    "lead.qualified",
    "email.opened",
]
CATEGORIES: list[Any] = ["tv", "tv", "tv", "tv", "radio", "TV", "tvs", 5, None, True]
BIRTHDAYS: list[Any] = [
    "02-27",
    "02-28",
    "02-29",
    "03-01",
    "02-26",
    "1990-02-28",
    "1992-02-29",
    "1985-03-01",
    "2000-12-31",
    "12-31",
    "2-28",
    "1990/02/28",
    "02-28 ",
    228,
    None,
    True,
]
PLANS: list[Any] = ["pro", "pro-annual", "free", "Pro", 1, None, ["pro"], {"tier": "pro"}]
AGES: list[Any] = [17, 18, 18.0, 18.5, 40, "18", "40", True, False, None, -3]
STAGES = [None, "", "lead", "marketingqualifiedlead", "customer", "subscriber"]


@dataclass
class Generated:
    database: Database
    prefix: str

    async def facts(self) -> list[ContactFacts]:
        """Every generated contact as the database stores it, with its events and score."""
        like = col(Contact.contact_id).startswith(self.prefix)
        async with self.database.session() as session:
            contacts = (await session.exec(select(Contact).where(like))).all()
            events = (
                await session.exec(
                    select(EventRecord).where(col(EventRecord.contact_id).startswith(self.prefix))
                )
            ).all()
            scores = (
                await session.exec(
                    select(LeadScore).where(col(LeadScore.contact_id).startswith(self.prefix))
                )
            ).all()
        by_contact: dict[str, list[EventRecord]] = {}
        for event in events:
            by_contact.setdefault(event.contact_id, []).append(event)
        score_of = {score.contact_id: score for score in scores}
        return [
            ContactFacts(c, by_contact.get(c.contact_id, []), score_of.get(c.contact_id))
            for c in contacts
        ]


def _attributes(rng: random.Random) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, values in (("birthday", BIRTHDAYS), ("plan", PLANS), ("age", AGES)):
        if rng.random() < 0.8:
            attributes[key] = rng.choice(values)
    return attributes


def _contact(rng: random.Random, contact_id: str) -> Contact:
    return Contact(
        contact_id=contact_id,
        email=rng.choice([None, "", f"{contact_id}@example.com", f"{contact_id}@example.org"]),
        timezone=rng.choice([None, "Europe/Paris", "America/New_York", "UTC"]),
        locale=rng.choice([None, "fr", "fr-FR", "en-US", "en"]),
        lifecycle_stage=rng.choice(STAGES),
        attributes=_attributes(rng),
        email_consent=rng.random() < 0.7,
        sms_consent=rng.random() < 0.5,
        push_consent=rng.random() < 0.5,
        email_suppressed=rng.choice([None, None, None, "hard_bounce"]),
        dormant_at=rng.choice([None, None, None, BASE - timedelta(days=3)]),
        created_at=rng.choice(
            [
                BASE - timedelta(days=30),  # exactly on the line
                BASE - timedelta(days=rng.uniform(0, 90)),
                BASE - timedelta(days=rng.uniform(25, 40)),
            ]
        ),
    )


def _occurred(rng: random.Random) -> datetime:
    return rng.choice(
        [
            BASE,  # exactly `now` for the first clock
            BASE - timedelta(days=7),  # exactly on a 7-day line
            BASE - timedelta(days=30),  # exactly on a 30-day line
            BASE - timedelta(days=rng.uniform(0, 45)),
            BASE - timedelta(days=rng.uniform(0, 8)),
            BASE + timedelta(days=rng.uniform(0, 3)),  # after some clocks
        ]
    )


def _events(rng: random.Random, contact_id: str) -> list[EventRecord]:
    found: list[EventRecord] = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8, 12])):
        properties: dict[str, Any] = {}
        if rng.random() < 0.85:
            properties["category"] = rng.choice(CATEGORIES)
        found.append(
            EventRecord(
                id=f"{contact_id}:{uuid.uuid4().hex[:12]}",
                contact_id=contact_id,
                name=rng.choice(EVENT_NAMES),
                properties=properties,
                occurred_at=_occurred(rng),
                received_at=BASE,
            )
        )
    return found


def _score(rng: random.Random, contact_id: str) -> LeadScore | None:
    if rng.random() < 0.3:
        return None
    return LeadScore(
        contact_id=contact_id,
        points=rng.choice([50.0, 49.999, rng.uniform(-20, 160), rng.uniform(40, 110)]),
        as_of=rng.choice(
            [BASE, BASE - timedelta(days=rng.uniform(0, 60)), BASE + timedelta(days=1)]
        ),
        qualified=False,
    )


async def seed(database: Database, seed_value: int) -> Generated:
    rng = random.Random(seed_value)
    prefix = f"seg-{uuid.uuid4().hex[:8]}-"
    async with database.session() as session:
        for n in range(CONTACTS):
            contact_id = f"{prefix}{n:04d}"
            session.add(_contact(rng, contact_id))
            session.add_all(_events(rng, contact_id))
            score = _score(rng, contact_id)
            if score is not None:
                session.add(score)
        await session.commit()
    return Generated(database, prefix)


async def unseed(generated: Generated) -> None:
    """Leave the session database as found: other folders count segment members too."""
    prefix = generated.prefix
    async with generated.database.session() as session:
        for table in (EventRecord, LeadScore, SegmentMembership, Contact):
            column = col(table.contact_id)
            await session.exec(delete(table).where(column.startswith(prefix)))
        await session.commit()


@pytest.fixture(params=["database", "sqlite"])
async def any_database(
    request: pytest.FixtureRequest, database: Database, tmp_path: Path
) -> AsyncIterator[Database]:
    """The session database (PostgreSQL when available), then a SQLite file explicitly."""
    if request.param == "database":
        yield database
        return
    url = f"sqlite:///{tmp_path / 'segments.db'}"
    migrate(url)
    sqlite = create_database(url)
    yield sqlite
    await sqlite.dispose()


@pytest.fixture
async def generated(any_database: Database) -> AsyncIterator[Generated]:
    data = await seed(any_database, seed_value=20271)
    yield data
    await unseed(data)
