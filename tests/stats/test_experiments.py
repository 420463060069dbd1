"""Experiment math: statsmodels' results checked against independent textbook formulas, the
edge cases, and the split step of the seeded dataset through the API."""

from __future__ import annotations

import math

import httpx
import pytest

from journeyman.stats import compare_groups
from tests.stats.seed import JOURNEY, SPLIT, SPLIT_WINDOW

Z_975 = 1.959963984540054  # the standard normal's 97.5% quantile


def pooled_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """The textbook two-proportion z-test, two-sided: (z, p)."""
    p1, p2, pooled = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return z, math.erfc(abs(z) / math.sqrt(2))


def wald_interval(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    p1, p2 = x1 / n1, x2 / n2
    half = Z_975 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2 - half, p1 - p2 + half


def pearson_chi_square(x1: int, n1: int, x2: int, n2: int) -> float:
    """Pearson's chi-square of the 2x2 table, without continuity correction."""
    observed = [[x1, n1 - x1], [x2, n2 - x2]]
    total, converted = n1 + n2, x1 + x2
    chi = 0.0
    for row, n in zip(observed, (n1, n2), strict=True):
        for cell, column in zip(row, (converted, total - converted), strict=True):
            expected = n * column / total
            chi += (cell - expected) ** 2 / expected
    return chi


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(30, 100, 20, 100), (50, 200, 20, 200), (12, 1000, 7, 1100), (421, 5000, 384, 5000)],
)
def test_p_value_and_interval_match_the_textbook_formulas(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    experiment = compare_groups("s", {"A": (n1, x1), "holdout": (n2, x2)})
    group = experiment.groups[0]
    z, p = pooled_z_test(x1, n1, x2, n2)
    # The z-test is the 2x2 chi-square test: z squared is Pearson's statistic.
    assert z**2 == pytest.approx(pearson_chi_square(x1, n1, x2, n2))
    assert group.p_value == pytest.approx(p, rel=1e-9)
    low, high = wald_interval(x1, n1, x2, n2)
    assert group.ci_low == pytest.approx(low)
    assert group.ci_high == pytest.approx(high)
    assert group.difference == pytest.approx(x1 / n1 - x2 / n2)
    assert group.lift == pytest.approx((x1 / n1 - x2 / n2) / (x2 / n2))
    assert group.significant is (p < 0.05)


def test_a_published_value() -> None:
    # 30/100 against 20/100: chi-square 2.667 on one degree of freedom, p = 0.1025 (the value
    # R's prop.test(c(30, 20), c(100, 100), correct = FALSE) prints).
    group = compare_groups("s", {"A": (100, 30), "holdout": (100, 20)}).groups[0]
    assert group.p_value == pytest.approx(0.1025, abs=5e-5)
    assert group.significant is False


def test_without_a_holdout_the_first_variant_is_the_baseline() -> None:
    experiment = compare_groups("s", {"B": (100, 40), "A": (100, 20)})
    assert experiment.baseline == "A"
    a, b = experiment.groups
    assert (a.variant, a.is_baseline, a.p_value, a.lift) == ("A", True, None, None)
    assert b.variant == "B"
    assert b.lift == pytest.approx(1.0)
    assert b.significant
    assert experiment.winner == "B"


def test_no_winner_unless_significant_and_better() -> None:
    worse = compare_groups("s", {"A": (500, 10), "holdout": (500, 40)})
    assert worse.groups[0].significant and worse.groups[0].difference is not None
    assert worse.groups[0].difference < 0
    assert worse.winner is None
    close = compare_groups("s", {"A": (100, 21), "holdout": (100, 20)})
    assert close.winner is None


def test_zero_conversions_everywhere_gives_no_p_value() -> None:
    experiment = compare_groups("s", {"A": (50, 0), "holdout": (50, 0)})
    group = experiment.groups[0]
    assert group.conversion_rate == 0.0
    assert group.difference == 0.0
    assert group.lift is None  # relative to a zero baseline: undefined, not infinite
    assert group.p_value is None
    assert group.significant is False
    assert experiment.winner is None


def test_a_zero_baseline_still_gets_a_test() -> None:
    group = compare_groups("s", {"A": (100, 10), "holdout": (100, 0)}).groups[0]
    assert group.lift is None
    assert group.p_value == pytest.approx(pooled_z_test(10, 100, 0, 100)[1])


def test_empty_groups_divide_by_nothing() -> None:
    experiment = compare_groups("s", {"A": (0, 0), "B": (10, 3), "holdout": (0, 0)})
    for group in experiment.groups:
        assert group.p_value is None
        assert group.difference is None
        assert group.significant is False
    assert experiment.groups[0].conversion_rate is None
    assert experiment.winner is None


async def test_the_split_step_through_the_api(stats_api: httpx.AsyncClient) -> None:
    response = await stats_api.get(f"/v1/journeys/{JOURNEY}/stats", params=SPLIT_WINDOW)
    assert response.status_code == 200, response.text
    [experiment] = response.json()["experiments"]
    assert experiment["step"] == "second_reminder_test"
    assert experiment["baseline"] == "holdout"
    groups = {group["variant"]: group for group in experiment["groups"]}
    assert list(groups) == ["A", "B", "holdout"]
    base_n, base_x = SPLIT["holdout"]
    for name in ("A", "B"):
        n, x = SPLIT[name]
        group = groups[name]
        assert (group["enrollments"], group["conversions"]) == (n, x)
        assert group["conversion_rate"] == pytest.approx(x / n)
        assert group["p_value"] == pytest.approx(pooled_z_test(x, n, base_x, base_n)[1])
    # A: 25% against 10% is significant; B: 12% is not.
    assert groups["A"]["significant"] and not groups["B"]["significant"]
    assert experiment["winner"] == "A"
    assert groups["holdout"]["is_baseline"] and groups["holdout"]["p_value"] is None
    step = next(s for s in response.json()["steps"] if s["name"] == "second_reminder_test")
    assert (step["kind"], step["reached"]) == ("split", 600)
