"""The segment DSL: predicates over a contact, composed with `&`, `|` and `~`.

Every predicate has two readings that must agree:

- `sql(ctx)`: a SQLAlchemy boolean over the `contacts` table (events and scores through
  correlated subqueries), the same code on SQLite and PostgreSQL. It is never NULL: each leaf
  is wrapped in COALESCE(..., false), so `~` means "not" and not "unknown".
- `holds(facts, ctx)`: the reference implementation, in Python, on one contact, its events and
  its score. The tests compare both on generated data.

`ctx` carries `now` (time windows and score decay are relative to it) and the scoring model's
half-life and qualify line.
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    DateTime,
    Float,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from journeyman.scoring.decay import decayed
from journeyman.segments.sqlfuncs import json_kind, seconds_between
from persistence.models import Contact, EventRecord, LeadScore, as_utc

Sql = ColumnElement[Any]
Comparison = Literal["<", "<=", "==", "!=", ">=", ">"]
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Contact columns a predicate may test (strings, NULL when unknown).
ContactField = Literal["email", "phone", "timezone", "locale", "lifecycle_stage", "crm_id"]
# Events that follow behaviour rather than being behaviour (lead thresholds): "any event"
# leaves them out, like ANY_EVENT in journeys.
_NOT_ACTIVITY_PREFIX = "lead."
# The JSON columns, typed as plain column expressions (`col()` keeps them `Mapped`).
_ATTRIBUTES = cast(ColumnElement[Any], Contact.attributes)
_PROPERTIES = cast(ColumnElement[Any], EventRecord.properties)


@dataclass(frozen=True)
class Context:
    """What a predicate is evaluated against besides the contact."""

    now: datetime
    half_life: timedelta = timedelta(days=30)
    qualify_at: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", as_utc(self.now))


@dataclass
class ContactFacts:
    """One contact as the Python evaluation sees it."""

    contact: Contact
    events: Sequence[EventRecord] = ()
    score: LeadScore | None = None


def _at(value: datetime) -> Sql:
    """A timestamp parameter stored the way the columns store it (UTC on both dialects)."""
    return literal(as_utc(value), DateTime(timezone=True))


def _definite(condition: Sql) -> Sql:
    return func.coalesce(condition, false())


def _compare(left: Any, op: Comparison, right: Any) -> Any:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == ">=":
        return left >= right
    return left > right


class Predicate(ABC):
    @abstractmethod
    def sql(self, ctx: Context) -> Sql: ...

    @abstractmethod
    def holds(self, facts: ContactFacts, ctx: Context) -> bool: ...

    @abstractmethod
    def describe(self) -> str: ...

    def __and__(self, other: Predicate) -> Predicate:
        return AllOf((*_parts(self, AllOf), *_parts(other, AllOf)))

    def __or__(self, other: Predicate) -> Predicate:
        return AnyOf((*_parts(self, AnyOf), *_parts(other, AnyOf)))

    def __invert__(self) -> Predicate:
        return self.operand if isinstance(self, Not) else Not(self)

    def __str__(self) -> str:
        return self.describe()


def _parts(predicate: Predicate, kind: type[AllOf] | type[AnyOf]) -> tuple[Predicate, ...]:
    return predicate.operands if isinstance(predicate, kind) else (predicate,)


@dataclass(frozen=True)
class AllOf(Predicate):
    operands: tuple[Predicate, ...]

    def sql(self, ctx: Context) -> Sql:
        return and_(*(p.sql(ctx) for p in self.operands))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return all(p.holds(facts, ctx) for p in self.operands)

    def describe(self) -> str:
        return " and ".join(_grouped(p) for p in self.operands)


@dataclass(frozen=True)
class AnyOf(Predicate):
    operands: tuple[Predicate, ...]

    def sql(self, ctx: Context) -> Sql:
        return or_(*(p.sql(ctx) for p in self.operands))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return any(p.holds(facts, ctx) for p in self.operands)

    def describe(self) -> str:
        return " or ".join(_grouped(p) for p in self.operands)


@dataclass(frozen=True)
class Not(Predicate):
    operand: Predicate

    def sql(self, ctx: Context) -> Sql:
        return not_(self.operand.sql(ctx))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return not self.operand.holds(facts, ctx)

    def describe(self) -> str:
        return f"not {_grouped(self.operand)}"


def _grouped(predicate: Predicate) -> str:
    text = predicate.describe()
    return f"({text})" if isinstance(predicate, AllOf | AnyOf) else text


# ----- values inside JSON (contact attributes, event properties) -------------------------


def _kind_of(mapping: Mapping[str, Any], key: str) -> str | None:
    """The Python twin of `json_kind`."""
    if key not in mapping:
        return None
    value = mapping[key]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


Scalar = str | int | float | bool


@dataclass(frozen=True)
class ValueTest:
    """A test on one key of a JSON object: equals / one_of / exists / compare / prefix.

    Values are typed as in JSON: the string "5" does not equal the number 5, and a number
    comparison is false for a value that is not a number.
    """

    key: str
    op: Literal["equals", "one_of", "exists", "compare", "startswith"]
    values: tuple[Scalar, ...] = ()
    comparison: Comparison = "=="

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"segment keys are identifiers, not {self.key!r}")
        if self.op != "exists" and not self.values:
            raise ValueError(f"{self.op} on {self.key!r} needs a value")

    def sql(self, column: Sql) -> Sql:
        kind = json_kind(column, literal(self.key))
        value = column[self.key]
        if self.op == "exists":
            return _definite(and_(kind.is_not(None), kind != "null"))
        if self.op == "startswith":
            prefix = str(self.values[0])
            text = value.as_string()
            head = func.substr(text, 1, len(prefix))
            return _definite(and_(kind == "string", head == prefix))
        if self.op == "compare":
            number = case((kind == "number", value.as_float()), else_=None)
            return _definite(_compare(number, self.comparison, literal(self.values[0], Float)))
        return or_(*(_equals_sql(kind, value, v) for v in self.values))

    def holds(self, mapping: Mapping[str, Any]) -> bool:
        kind = _kind_of(mapping, self.key)
        value = mapping.get(self.key)
        if self.op == "exists":
            return kind not in (None, "null")
        if self.op == "startswith":
            return kind == "string" and str(value).startswith(str(self.values[0]))
        if self.op == "compare":
            return kind == "number" and bool(_compare(value, self.comparison, self.values[0]))
        return any(_equals_py(kind, value, v) for v in self.values)

    def describe(self, where: str) -> str:
        name = f"{where}.{self.key}"
        if self.op == "exists":
            return f"{name} is set"
        if self.op == "startswith":
            return f"{name} starts with {self.values[0]!r}"
        if self.op == "compare":
            return f"{name} {self.comparison} {self.values[0]!r}"
        if self.op == "one_of":
            return f"{name} in {list(self.values)!r}"
        return f"{name} = {self.values[0]!r}"


def _equals_sql(kind: Sql, value: Sql, expected: Scalar) -> Sql:
    if isinstance(expected, bool):
        return _definite(kind == ("true" if expected else "false"))
    if isinstance(expected, int | float):
        number = case((kind == "number", value.as_float()), else_=None)
        return _definite(number == literal(float(expected), Float))
    return _definite(and_(kind == "string", value.as_string() == expected))


def _equals_py(kind: str | None, value: Any, expected: Scalar) -> bool:
    if isinstance(expected, bool):
        return kind == ("true" if expected else "false")
    if isinstance(expected, int | float):
        return kind == "number" and float(value) == float(expected)
    return kind == "string" and value == expected


@dataclass(frozen=True)
class Key:
    """Builds tests on one key: `Key("category").equals("tv")`."""

    key: str

    def equals(self, value: Scalar) -> ValueTest:
        return ValueTest(self.key, "equals", (value,))

    def one_of(self, *values: Scalar) -> ValueTest:
        return ValueTest(self.key, "one_of", tuple(values))

    def exists(self) -> ValueTest:
        return ValueTest(self.key, "exists")

    def compare(self, comparison: Comparison, number: float) -> ValueTest:
        return ValueTest(self.key, "compare", (number,), comparison)

    def at_least(self, number: float) -> ValueTest:
        return self.compare(">=", number)

    def below(self, number: float) -> ValueTest:
        return self.compare("<", number)

    def startswith(self, prefix: str) -> ValueTest:
        return ValueTest(self.key, "startswith", (prefix,))


# ----- the contact's own columns ---------------------------------------------------------


@dataclass(frozen=True)
class AttributeIs(Predicate):
    """A test on `contacts.attributes`."""

    test: ValueTest

    def sql(self, ctx: Context) -> Sql:
        return self.test.sql(_ATTRIBUTES)

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return self.test.holds(facts.contact.attributes or {})

    def describe(self) -> str:
        return self.test.describe("attributes")


@dataclass(frozen=True)
class FieldIs(Predicate):
    """A test on a string column: present (not NULL, not empty), equals, one of, prefix."""

    field: ContactField
    op: Literal["present", "one_of", "startswith"]
    values: tuple[str, ...] = ()

    def sql(self, ctx: Context) -> Sql:
        column = getattr(Contact, self.field)
        if self.op == "present":
            return _definite(and_(column.is_not(None), column != ""))
        if self.op == "startswith":
            prefix = self.values[0]
            return _definite(func.substr(column, 1, len(prefix)) == prefix)
        return _definite(column.in_(self.values))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        value: str | None = getattr(facts.contact, self.field)
        if self.op == "present":
            return bool(value)
        if value is None:
            return False
        if self.op == "startswith":
            return value.startswith(self.values[0])
        return value in self.values

    def describe(self) -> str:
        if self.op == "present":
            return f"{self.field} is set"
        if self.op == "startswith":
            return f"{self.field} starts with {self.values[0]!r}"
        if len(self.values) == 1:
            return f"{self.field} = {self.values[0]!r}"
        return f"{self.field} in {list(self.values)!r}"


@dataclass(frozen=True)
class Consent(Predicate):
    """Consent to marketing on a channel (email, sms, push)."""

    channel: Literal["email", "sms", "push"]

    def sql(self, ctx: Context) -> Sql:
        return _definite(getattr(Contact, f"{self.channel}_consent").is_(True))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return bool(getattr(facts.contact, f"{self.channel}_consent"))

    def describe(self) -> str:
        return f"consents to {self.channel}"


@dataclass(frozen=True)
class IsSet(Predicate):
    """A nullable marker column is set: email suppressed (bounce, complaint) or dormant."""

    column: Literal["email_suppressed", "dormant_at"]

    def sql(self, ctx: Context) -> Sql:
        return _definite(getattr(Contact, self.column).is_not(None))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return getattr(facts.contact, self.column) is not None

    def describe(self) -> str:
        return "email suppressed" if self.column == "email_suppressed" else "dormant"


@dataclass(frozen=True)
class KnownFor(Predicate):
    """The contact was created at least `age` before now."""

    age: timedelta

    def sql(self, ctx: Context) -> Sql:
        return _definite(col(Contact.created_at) <= _at(ctx.now - self.age))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        return as_utc(facts.contact.created_at) <= ctx.now - self.age

    def describe(self) -> str:
        return f"contact for at least {_span(self.age)}"


# ----- lead score ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreIs(Predicate):
    """The lead score at `now`, decay applied, compared with a number (or the qualify line
    when `value` is None). A contact never scored has score 0."""

    comparison: Comparison
    value: float | None = None

    def _line(self, ctx: Context) -> float:
        return ctx.qualify_at if self.value is None else self.value

    def sql(self, ctx: Context) -> Sql:
        elapsed = seconds_between(_at(ctx.now), col(LeadScore.as_of))
        halvings = case((elapsed > 0, elapsed), else_=0.0) / ctx.half_life.total_seconds()
        decayed_points = col(LeadScore.points) * func.power(literal(0.5, Float), halvings)
        score = (
            select(decayed_points)
            .where(col(LeadScore.contact_id) == col(Contact.contact_id))
            .scalar_subquery()
        )
        score_now = func.coalesce(score, literal(0.0, Float))
        return _definite(_compare(score_now, self.comparison, literal(self._line(ctx), Float)))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        row = facts.score
        score = 0.0 if row is None else decayed(row.points, row.as_of, ctx.now, ctx.half_life)
        return bool(_compare(score, self.comparison, self._line(ctx)))

    def describe(self) -> str:
        line = "the qualify line" if self.value is None else f"{self.value:g}"
        return f"score {self.comparison} {line}"


# ----- event history ---------------------------------------------------------------------


@dataclass(frozen=True)
class EventCount(Predicate):
    """How many events named `name` (None: any activity, i.e. any event but lead.*) with
    every property test passing occurred in (now - within, now], compared with `count`."""

    name: str | None
    within: timedelta
    comparison: Comparison
    count: int
    where: tuple[ValueTest, ...] = ()

    def _matches(self, event: EventRecord, ctx: Context) -> bool:
        occurred = as_utc(event.occurred_at)
        if not ctx.now - self.within < occurred <= ctx.now:
            return False
        if self.name is None:
            if event.name.startswith(_NOT_ACTIVITY_PREFIX):
                return False
        elif event.name != self.name:
            return False
        return all(test.holds(event.properties or {}) for test in self.where)

    def sql(self, ctx: Context) -> Sql:
        conditions: list[Sql] = [
            col(EventRecord.contact_id) == col(Contact.contact_id),
            col(EventRecord.occurred_at) > _at(ctx.now - self.within),
            col(EventRecord.occurred_at) <= _at(ctx.now),
        ]
        if self.name is None:
            prefix = _NOT_ACTIVITY_PREFIX
            conditions.append(func.substr(col(EventRecord.name), 1, len(prefix)) != prefix)
        else:
            conditions.append(col(EventRecord.name) == self.name)
        conditions += [test.sql(_PROPERTIES) for test in self.where]
        counted = select(func.count()).select_from(EventRecord).where(*conditions)
        return _definite(_compare(counted.scalar_subquery(), self.comparison, self.count))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        found = sum(1 for event in facts.events if self._matches(event, ctx))
        return bool(_compare(found, self.comparison, self.count))

    def describe(self) -> str:
        what = "event" if self.name is None else repr(self.name)
        if self.where:
            what += " with " + " and ".join(t.describe("properties") for t in self.where)
        window = f"in the last {_span(self.within)}"
        if self.comparison == "==" and self.count == 0:
            return f"no {what} {window}"
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"{what} {_COUNT_WORDS[self.comparison]} {times} {window}"


# ----- anniversaries ---------------------------------------------------------------------


@dataclass(frozen=True)
class MonthDayNear(Predicate):
    """`attributes.<key>` ("MM-DD" or "YYYY-MM-DD") falls on the UTC date of `now`, or up to
    `days` days before or after it (the month-day only; the year is ignored).

    The window is wider than one day because "today" depends on the contact's time zone: a
    journey picks the exact local day. A 29 February birthday counts on 28 February in a
    year without 29 February.
    """

    key: str = "birthday"
    days: int = 1

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"segment keys are identifiers, not {self.key!r}")

    def month_days(self, ctx: Context) -> list[str]:
        today = ctx.now.date()
        found: set[str] = set()
        for offset in range(-self.days, self.days + 1):
            day = today + timedelta(days=offset)
            found.add(f"{day:%m-%d}")
            if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
                found.add("02-29")
        return sorted(found)

    def sql(self, ctx: Context) -> Sql:
        column = _ATTRIBUTES
        kind = json_kind(column, literal(self.key))
        text = column[self.key].as_string()
        month_day = case(
            (func.length(text) == 5, text),
            (func.length(text) == 10, func.substr(text, 6, 5)),
            else_=None,
        )
        return _definite(and_(kind == "string", month_day.in_(self.month_days(ctx))))

    def holds(self, facts: ContactFacts, ctx: Context) -> bool:
        attributes = facts.contact.attributes or {}
        value = attributes.get(self.key)
        if _kind_of(attributes, self.key) != "string":
            return False
        text = str(value)
        month_day = text if len(text) == 5 else text[5:10] if len(text) == 10 else None
        return month_day in self.month_days(ctx)

    def describe(self) -> str:
        return f"attributes.{self.key} (month-day) within {self.days} day(s) of today (UTC)"


_COUNT_WORDS: dict[str, str] = {
    ">=": "at least",
    "<=": "at most",
    ">": "more than",
    "<": "fewer than",
    "==": "exactly",
    "!=": "not exactly",
}


def _span(delta: timedelta) -> str:
    if delta.total_seconds() % 86400 == 0:
        days = int(delta.total_seconds() // 86400)
        return "1 day" if days == 1 else f"{days} days"
    return str(delta)


# ----- the vocabulary definitions use --------------------------------------------------


def days(n: float) -> timedelta:
    return timedelta(days=n)


def contact_field(name: ContactField) -> _FieldRef:
    return _FieldRef(name)


@dataclass(frozen=True)
class _FieldRef:
    name: ContactField

    def present(self) -> Predicate:
        return FieldIs(self.name, "present")

    def equals(self, value: str) -> Predicate:
        return FieldIs(self.name, "one_of", (value,))

    def one_of(self, *values: str) -> Predicate:
        return FieldIs(self.name, "one_of", tuple(values))

    def startswith(self, prefix: str) -> Predicate:
        return FieldIs(self.name, "startswith", (prefix,))


@dataclass(frozen=True)
class _AttributeRef:
    key: str
    _key: Key = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", Key(self.key))

    def equals(self, value: Scalar) -> Predicate:
        return AttributeIs(self._key.equals(value))

    def one_of(self, *values: Scalar) -> Predicate:
        return AttributeIs(self._key.one_of(*values))

    def exists(self) -> Predicate:
        return AttributeIs(self._key.exists())

    def compare(self, comparison: Comparison, number: float) -> Predicate:
        return AttributeIs(self._key.compare(comparison, number))

    def startswith(self, prefix: str) -> Predicate:
        return AttributeIs(self._key.startswith(prefix))

    def month_day_near(self, days: int = 1) -> Predicate:
        return MonthDayNear(self.key, days)


def attribute(key: str) -> _AttributeRef:
    return _AttributeRef(key)


def prop(key: str) -> Key:
    """A test on an event property, for `events(..., where=[...])`."""
    return Key(key)


def consent(channel: Literal["email", "sms", "push"]) -> Predicate:
    return Consent(channel)


def email_suppressed() -> Predicate:
    return IsSet("email_suppressed")


def dormant() -> Predicate:
    return IsSet("dormant_at")


def known_for(age: timedelta) -> Predicate:
    return KnownFor(age)


def score(comparison: Comparison, value: float) -> Predicate:
    return ScoreIs(comparison, value)


def qualified_score() -> Predicate:
    """Score (decayed to now) at or above the scoring model's qualify line."""
    return ScoreIs(">=", None)


@dataclass(frozen=True)
class _EventsRef:
    name: str | None
    within: timedelta
    where: tuple[ValueTest, ...]

    def count(self, comparison: Comparison, n: int) -> Predicate:
        return EventCount(self.name, self.within, comparison, n, self.where)

    def at_least(self, n: int) -> Predicate:
        return self.count(">=", n)

    def at_most(self, n: int) -> Predicate:
        return self.count("<=", n)

    def none(self) -> Predicate:
        return self.count("==", 0)

    def any(self) -> Predicate:
        return self.count(">=", 1)


def events(name: str | None, *, within: timedelta, where: Sequence[ValueTest] = ()) -> _EventsRef:
    """Events named `name` (None: any activity) in the last `within`, with property tests."""
    return _EventsRef(name, within, tuple(where))
