"""The lead scoring rules: edit `RULES` below to change what earns (or costs) points.

A rule gives `points` to an event named `event` whose properties pass every filter in `where`:

    ScoreRule("pricing_page", "page_viewed", 20, where=[startswith("path", "/pricing")],
              daily_cap=40)

- `name` identifies the rule in the score history and its daily cap; keep it stable.
- `points` may be negative (an unsubscribe costs points).
- `where` filters: `equals(prop, value)`, `startswith(prop, prefix)`, `one_of(prop, [...])`;
  a missing property fails its filter.
- `daily_cap`: at most this many points (in absolute value) from this rule per contact per
  UTC day; the event that reaches the cap gets the remainder, later ones nothing.

Several rules may match one event; their points add up. How fast points fade (half-life) and
where the thresholds lie come from the settings (`JOURNEYMAN_SCORE_HALF_LIFE_DAYS`,
`JOURNEYMAN_SCORE_QUALIFY_AT`, `JOURNEYMAN_SCORE_DISQUALIFY_BELOW`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from journeyman.settings import Settings

FilterOp = Literal["equals", "startswith", "one_of"]


@dataclass(frozen=True)
class PropertyFilter:
    """One condition on an event property (build them with the functions below)."""

    prop: str
    op: FilterOp
    value: Any

    def passes(self, properties: Mapping[str, Any]) -> bool:
        if self.prop not in properties:
            return False
        actual = properties[self.prop]
        if self.op == "equals":
            return bool(actual == self.value)
        if self.op == "startswith":
            return isinstance(actual, str) and actual.startswith(self.value)
        return actual in self.value


def equals(prop: str, value: Any) -> PropertyFilter:
    return PropertyFilter(prop, "equals", value)


def startswith(prop: str, prefix: str) -> PropertyFilter:
    return PropertyFilter(prop, "startswith", prefix)


def one_of(prop: str, values: Iterable[Any]) -> PropertyFilter:
    return PropertyFilter(prop, "one_of", tuple(values))


@dataclass(frozen=True)
class ScoreRule:
    name: str
    event: str
    points: float
    where: Sequence[PropertyFilter] = ()
    daily_cap: float | None = None

    def __post_init__(self) -> None:
        if self.daily_cap is not None and self.daily_cap <= 0:
            raise ValueError(f"rule {self.name}: daily_cap must be positive")
        # A list in the rule table reads naturally; a tuple keeps the rule hashable.
        object.__setattr__(self, "where", tuple(self.where))

    def matches(self, name: str, properties: Mapping[str, Any]) -> bool:
        return name == self.event and all(f.passes(properties) for f in self.where)


# ----- the rules ---------------------------------------------------------------------------

RULES: tuple[ScoreRule, ...] = (
    ScoreRule(
        name="pricing_page",
        event="page_viewed",
        where=[startswith("path", "/pricing")],
        points=+20,
        daily_cap=40,
    ),
    ScoreRule(
        name="email_click",
        # Tracked clicks in our emails (`journeyman.engagement.EMAIL_CLICKED`).
        event="email.clicked",
        points=+5,
        daily_cap=15,
    ),
    ScoreRule(name="webinar", event="webinar_attended", points=+15),
    ScoreRule(name="whitepaper", event="whitepaper_downloaded", points=+10, daily_cap=20),
    ScoreRule(name="demo", event="demo_attended", points=+20),
    ScoreRule(
        name="unsubscribe",
        # Consent changes are recorded per channel: leaving the email list signals lost
        # interest; an SMS or push opt-out alone is a channel preference.
        event="unsubscribed",
        where=[equals("channel", "email")],
        points=-30,
    ),
)

# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringModel:
    """The rules plus how points fade and where the thresholds lie."""

    rules: tuple[ScoreRule, ...] = RULES
    half_life: timedelta = timedelta(days=30)
    qualify_at: float = 50.0
    disqualify_below: float = 30.0
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.disqualify_below > self.qualify_at:
            raise ValueError("disqualify_below must not exceed qualify_at")
        duplicated = {r.name for r in self.rules if [s.name for s in self.rules].count(r.name) > 1}
        if duplicated:
            raise ValueError(f"rule names must be unique: {sorted(duplicated)}")
        object.__setattr__(self, "names", frozenset(rule.event for rule in self.rules))

    @classmethod
    def from_settings(cls, settings: Settings, rules: Sequence[ScoreRule] = RULES) -> ScoringModel:
        return cls(
            rules=tuple(rules),
            half_life=timedelta(days=settings.score_half_life_days),
            qualify_at=settings.score_qualify_at,
            disqualify_below=settings.score_disqualify_below,
        )

    def matching(self, name: str, properties: Mapping[str, Any]) -> list[ScoreRule]:
        if name not in self.names:
            return []
        return [rule for rule in self.rules if rule.matches(name, properties)]

    def scores(self, name: str, properties: Mapping[str, Any]) -> bool:
        """Whether any rule gives this event points (what the router asks)."""
        return bool(self.matching(name, properties))
