"""Journey analytics: funnel counts per step and experiment results, from the database.

Three GROUP BY queries over one journey's enrollments, whatever its number of steps: status
counts, recorded steps (with split groups), and message outcomes. Never a query per step, and
never Temporal visibility. They filter on indexed columns (`enrollments (journey, entered_at)`,
`enrollment_steps (journey)`, `messages (journey, step)`, the unique `(run_id, step)` of step
rows); over a large share of a table PostgreSQL rightly prefers parallel hash joins to them.
Same SQL on SQLite and PostgreSQL. `python -m bench stats` times it over 100,000 enrollments.

Experiment statistics come from statsmodels: `proportions_ztest` (two-sided, pooled variance)
for the p-value and `confint_proportions_2indep(method="wald", compare="diff")` for the 95%
confidence interval of the difference in conversion rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Executable, case, func, select, text
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from statsmodels.stats.proportion import (  # type: ignore[import-untyped]
    confint_proportions_2indep,
    proportions_ztest,
)

from persistence import Enrollment, EnrollmentStep, Message
from workflows.splits import HOLDOUT

ALPHA = 0.05
WORK_MEM = "64MB"
STATUSES = ("active", "converted", "exited", "completed", "failed")
_VARIANT_PREFIX = "variant "


@dataclass(frozen=True)
class StatsFilter:
    """Enrollments of `journey` that entered in [since, until), optionally of one version."""

    journey: str
    since: datetime | None = None
    until: datetime | None = None
    version: int | None = None


@dataclass
class StepStats:
    name: str
    kind: str
    reached: int = 0
    sent: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted_after: int = 0
    # When the first enrollment got there: orders the steps. A datetime (a string on SQLite).
    first_at: Any = None


@dataclass
class GroupResult:
    """One variant (or the holdout) of a split, compared with the baseline group."""

    variant: str
    enrollments: int
    conversions: int
    conversion_rate: float | None
    is_baseline: bool
    difference: float | None = None
    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    significant: bool = False


@dataclass
class Experiment:
    step: str
    baseline: str
    groups: list[GroupResult]
    winner: str | None


@dataclass
class JourneyStats:
    filter: StatsFilter
    entered: int
    by_status: dict[str, int]
    steps: list[StepStats]
    experiments: list[Experiment]


async def journey_stats(session: AsyncSession, where: StatsFilter) -> JourneyStats:
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # The hash joins over every step row of a journey spill to disk with the default 4MB;
        # LOCAL: for this transaction only, which the session ends after the call.
        await connection.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    by_status = await _status_counts(session, where)
    steps, splits = await _steps(session, where)
    await _add_messages(session, where, steps)
    return JourneyStats(
        filter=where,
        entered=sum(by_status.values()),
        by_status={status: by_status.get(status, 0) for status in STATUSES},
        # Ordered by first appearance: the journey's own order, whatever the step names.
        steps=sorted(steps.values(), key=lambda step: (step.first_at, step.name)),
        experiments=[compare_groups(step, groups) for step, groups in splits.items()],
    )


async def _rows(session: AsyncSession, statement: Executable) -> Sequence[Any]:
    # Plain column tuples, so through the connection: SQLModel's `exec` types model selects,
    # and its `execute` warns that it is meant for ORM objects.
    connection = await session.connection()
    return (await connection.execute(statement)).all()


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, or None when there is nothing to divide by."""
    return part / whole if whole else None


def _enrollment_conditions(where: StatsFilter) -> list[ColumnElement[bool]]:
    conditions = [col(Enrollment.journey) == where.journey]
    if where.since is not None:
        conditions.append(col(Enrollment.entered_at) >= where.since)
    if where.until is not None:
        conditions.append(col(Enrollment.entered_at) < where.until)
    if where.version is not None:
        conditions.append(col(Enrollment.version) == where.version)
    return conditions


def _converted() -> ColumnElement[int]:
    return case((col(Enrollment.status) == "converted", 1), else_=0)


async def _status_counts(session: AsyncSession, where: StatsFilter) -> dict[str, int]:
    statement = (
        select(col(Enrollment.status), func.count())
        .where(*_enrollment_conditions(where))
        .group_by(col(Enrollment.status))
    )
    return {status: count for status, count in await _rows(session, statement)}


Splits = dict[str, dict[str, tuple[int, int]]]


async def _steps(session: AsyncSession, where: StatsFilter) -> tuple[dict[str, StepStats], Splits]:
    """Recorded steps: reached and converted after, and the groups of split steps.

    A step row is unique per enrollment and step, so plain counts are enrollments (no
    COUNT(DISTINCT), which would sort); split rows are also grouped by their outcome.
    """
    is_split = col(EnrollmentStep.kind) == "split"
    variant = case((is_split, col(EnrollmentStep.outcome)))
    statement = (
        select(
            col(EnrollmentStep.step),
            col(EnrollmentStep.kind),
            variant,
            func.count(),
            func.sum(_converted()),
            func.min(col(EnrollmentStep.at)),
        )
        .join(Enrollment, col(Enrollment.run_id) == col(EnrollmentStep.run_id))
        .where(col(EnrollmentStep.journey) == where.journey, *_enrollment_conditions(where))
        .group_by(col(EnrollmentStep.step), col(EnrollmentStep.kind), variant)
    )
    steps: dict[str, StepStats] = {}
    splits: Splits = {}
    for name, kind, outcome, count, conversions, first_at in await _rows(session, statement):
        step = steps.setdefault(name, StepStats(name=name, kind=kind, first_at=first_at))
        step.reached += count
        step.converted_after += int(conversions or 0)
        step.first_at = min(step.first_at, first_at)
        if outcome is not None:
            group = outcome.removeprefix(_VARIANT_PREFIX)
            splits.setdefault(name, {})[group] = (count, int(conversions or 0))
    ordered = sorted(splits, key=lambda name: (steps[name].first_at, name))
    return steps, {name: splits[name] for name in ordered}


async def _add_messages(
    session: AsyncSession, where: StatsFilter, steps: dict[str, StepStats]
) -> None:
    """Message outcomes and engagement per step.

    A send still in flight (or held back) has its message but no step row yet: it counts as
    reached here, found by the outer join on the unique (run_id, step) of step rows.
    """
    unrecorded = col(EnrollmentStep.id).is_(None)
    statement = (
        select(
            col(Message.step),
            col(Message.status),
            col(Message.reason),
            func.count(),
            func.count(col(Message.delivered_at)),
            func.count(col(Message.opened_at)),
            func.count(col(Message.first_clicked_at)),
            func.sum(case((unrecorded, 1), else_=0)),
            func.sum(case((unrecorded, _converted()), else_=0)),
            func.min(col(Message.created_at)),
        )
        .join(Enrollment, col(Enrollment.run_id) == col(Message.run_id))
        .outerjoin(
            EnrollmentStep,
            (col(EnrollmentStep.run_id) == col(Message.run_id))
            & (col(EnrollmentStep.step) == col(Message.step))
            # Only send steps have messages (webhooks too are sends): a smaller hash to build.
            & (col(EnrollmentStep.kind) == "send")
            & (col(EnrollmentStep.journey) == where.journey),
        )
        .where(col(Message.journey) == where.journey, *_enrollment_conditions(where))
        .group_by(col(Message.step), col(Message.status), col(Message.reason))
    )
    rows = await _rows(session, statement)
    for name, status, reason, count, delivered, opened, clicked, extra, converted, at in rows:
        step = steps.setdefault(name, StepStats(name=name, kind="send", first_at=at))
        step.first_at = min(step.first_at, at)
        step.reached += int(extra or 0)
        step.converted_after += int(converted or 0)
        if status == "sent":
            step.sent += count
            # Engagement only counts on sent messages, so its rates over `sent` stay <= 1.
            step.delivered += delivered
            step.opened += opened
            step.clicked += clicked
        elif status == "suppressed":
            key = reason or "unknown"
            step.suppressed[key] = step.suppressed.get(key, 0) + count
        elif status == "failed":
            step.failed += count


def compare_groups(step: str, groups: dict[str, tuple[int, int]]) -> Experiment:
    """Each group against the holdout, or against the first variant when there is none.

    `groups` maps a variant name to (enrollments, conversions).
    """
    variants = sorted(name for name in groups if name != HOLDOUT)
    baseline = HOLDOUT if HOLDOUT in groups else variants[0]
    base_n, base_conversions = groups[baseline]
    results = []
    for name in [*variants, HOLDOUT] if HOLDOUT in groups else variants:
        n, conversions = groups[name]
        result = GroupResult(
            variant=name,
            enrollments=n,
            conversions=conversions,
            conversion_rate=rate(conversions, n),
            is_baseline=name == baseline,
        )
        if name != baseline:
            _compare(result, base_conversions, base_n)
        results.append(result)
    winners = [
        group
        for group in results
        if group.significant and group.difference is not None and group.difference > 0
    ]
    winner = (
        max(winners, key=lambda group: group.conversion_rate or 0.0).variant if winners else None
    )
    return Experiment(step=step, baseline=baseline, groups=results, winner=winner)


def _compare(result: GroupResult, base_conversions: int, base_n: int) -> None:
    n, conversions = result.enrollments, result.conversions
    if not n or not base_n:
        return  # an empty group: nothing to compare, and no division by zero
    rate_here, rate_base = conversions / n, base_conversions / base_n
    result.difference = rate_here - rate_base
    result.lift = result.difference / rate_base if rate_base else None
    low, high = confint_proportions_2indep(
        conversions, n, base_conversions, base_n, method="wald", compare="diff", alpha=ALPHA
    )
    result.ci_low, result.ci_high = _finite(low), _finite(high)
    pooled = (conversions + base_conversions) / (n + base_n)
    if pooled in (0.0, 1.0):
        return  # all or none converted: the test statistic is undefined, so no p-value
    _, p_value = proportions_ztest([conversions, base_conversions], [n, base_n])
    result.p_value = _finite(p_value)
    result.significant = result.p_value is not None and result.p_value < ALPHA


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
