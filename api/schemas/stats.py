"""Journey stats: the funnel, per step, and experiment results. Rates are null when their
denominator is zero."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from journeyman.stats import Experiment, JourneyStats, StepStats, rate


class EnrollmentCounts(BaseModel):
    entered: int = Field(description="Enrollments that entered in [since, until).")
    active: int
    converted: int
    exited: int
    completed: int
    failed: int


class EnrollmentRates(BaseModel):
    """Each status over `entered`."""

    active: float | None
    converted: float | None
    exited: float | None
    completed: float | None
    failed: float | None


class StepRates(BaseModel):
    reached: float | None = Field(description="reached / entered")
    delivered: float | None = Field(description="delivered / sent")
    opened: float | None = Field(description="opened / sent")
    clicked: float | None = Field(description="clicked / sent")
    converted_after: float | None = Field(description="converted_after / reached")


class StepOut(BaseModel):
    name: str
    kind: str = Field(description="send, wait, wait_for, split, read_contact, start, ...")
    reached: int = Field(description="Enrollments with a step record or a message for it.")
    sent: int
    suppressed: dict[str, int] = Field(description="Suppressed messages by reason.")
    failed: int
    delivered: int
    opened: int = Field(description="Unique: messages opened at least once.")
    clicked: int = Field(description="Unique: messages clicked at least once.")
    converted_after: int = Field(description="Enrollments that reached it and converted.")
    rates: StepRates


class GroupOut(BaseModel):
    variant: str = Field(description="A variant's name, or `holdout`.")
    enrollments: int
    conversions: int
    conversion_rate: float | None
    is_baseline: bool
    difference: float | None = Field(description="conversion_rate minus the baseline's.")
    lift: float | None = Field(description="difference / the baseline's conversion rate.")
    ci_low: float | None = Field(description="95% CI of the difference (Wald), low end.")
    ci_high: float | None
    p_value: float | None = Field(description="Two-proportion z-test, two-sided.")
    significant: bool = Field(description="p_value < 0.05")


class ExperimentOut(BaseModel):
    step: str
    baseline: str = Field(description="`holdout`, or the first variant when there is none.")
    winner: str | None = Field(
        description="The best group that beats the baseline significantly, if any."
    )
    groups: list[GroupOut]


class JourneyStatsOut(BaseModel):
    journey: str
    version: int | None
    since: datetime | None
    until: datetime | None
    enrollments: EnrollmentCounts
    rates: EnrollmentRates
    steps: list[StepOut]
    experiments: list[ExperimentOut]

    @classmethod
    def of(cls, stats: JourneyStats) -> JourneyStatsOut:
        counts = stats.by_status
        return cls(
            journey=stats.filter.journey,
            version=stats.filter.version,
            since=stats.filter.since,
            until=stats.filter.until,
            enrollments=EnrollmentCounts(entered=stats.entered, **counts),
            rates=EnrollmentRates(
                **{status: rate(count, stats.entered) for status, count in counts.items()}
            ),
            steps=[_step(step, stats.entered) for step in stats.steps],
            experiments=[_experiment(experiment) for experiment in stats.experiments],
        )


def _step(step: StepStats, entered: int) -> StepOut:
    return StepOut(
        name=step.name,
        kind=step.kind,
        reached=step.reached,
        sent=step.sent,
        suppressed=step.suppressed,
        failed=step.failed,
        delivered=step.delivered,
        opened=step.opened,
        clicked=step.clicked,
        converted_after=step.converted_after,
        rates=StepRates(
            reached=rate(step.reached, entered),
            delivered=rate(step.delivered, step.sent),
            opened=rate(step.opened, step.sent),
            clicked=rate(step.clicked, step.sent),
            converted_after=rate(step.converted_after, step.reached),
        ),
    )


def _experiment(experiment: Experiment) -> ExperimentOut:
    return ExperimentOut(
        step=experiment.step,
        baseline=experiment.baseline,
        winner=experiment.winner,
        groups=[
            GroupOut.model_validate(group, from_attributes=True) for group in experiment.groups
        ],
    )
