"""Fixtures for the lead scoring tests: fresh contacts, a model without surprises, events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from journeyman.scoring.rules import ScoreRule, ScoringModel
from workflows.contracts import Event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HALF_LIFE = timedelta(days=30)

# Plain rules for the store tests: one event name per amount, no filters, no caps.
PLAIN_RULES = (
    ScoreRule("plus_5", "plus_5", 5),
    ScoreRule("plus_20", "plus_20", 20),
    ScoreRule("plus_35", "plus_35", 35),
    ScoreRule("minus_10", "minus_10", -10),
    ScoreRule("minus_20", "minus_20", -20),
    ScoreRule("minus_30", "minus_30", -30),
)

_ids = count()


def plain_model(rules: Sequence[ScoreRule] = PLAIN_RULES) -> ScoringModel:
    return ScoringModel(
        rules=tuple(rules), half_life=HALF_LIFE, qualify_at=50.0, disqualify_below=30.0
    )


def event(
    contact_id: str,
    name: str,
    at: datetime = T0,
    properties: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> Event:
    return Event(
        id=event_id or f"e-{next(_ids)}-{uuid.uuid4().hex[:6]}",
        contact_id=contact_id,
        name=name,
        properties=properties or {},
        occurred_at=at,
    )


@pytest.fixture
def contact_id() -> str:
    """A contact of this test alone: the database is shared by the session."""
    return f"c-{uuid.uuid4().hex[:12]}"
