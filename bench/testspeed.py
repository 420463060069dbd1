"""Scenario 5, test speed: wall time of the 90-day journey test in simulated time, and of the
whole suite.

The longest journey is `lead_nurturing` (81 days at most); the 90-day test runs its longest
path and the onboarding it hands the contact to (`tests/journeys/test_ninety_days.py`) against
the time-skipping test server. Each figure comes from pytest itself (`--durations=0`), in a
fresh pytest process: "cold" runs the test alone, so it pays the first workflow sandbox and
worker start of the process; "warm" runs one other journey test first in the same session,
as the test runs inside the suite. `--suite` also runs the whole suite (several minutes).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import machine_line

ROOT = Path(__file__).resolve().parent.parent
NINETY_DAYS = (
    "tests/journeys/test_ninety_days.py::"
    "test_ninety_days_from_whitepaper_to_the_last_onboarding_email"
)
# Any short journey test: run first, it warms what a session shares (the sandbox's imports).
WARM_UP = "tests/journeys/test_onboarding.py::test_three_emails_at_days_0_7_and_14"
TARGET_SECONDS = 0.5
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
_DURATION = re.compile(r"^\s*([\d.]+)s\s+(setup|call|teardown)\s+(\S+)", re.MULTILINE)
# The last line: "12 passed, 1 skipped in 3.21s", with `=` around it unless -q.
_SUMMARY = re.compile(
    r"^[= ]*(\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)\b.*?)"
    r" in ([\d.]+)s",
    re.MULTILINE,
)


@dataclass
class PytestRun:
    """One pytest process: its wall time, and pytest's own setup/call/teardown per test."""

    wall: float
    returncode: int
    phases: dict[tuple[str, str], float] = field(default_factory=dict)
    summary: str = ""
    reported: float | None = None  # the "in X s" pytest prints
    output: str = ""

    def phase(self, test: str, name: str) -> float:
        return self.phases.get((test, name), 0.0)


@dataclass(frozen=True)
class Figure:
    label: str
    call: list[float]
    total: list[float]  # setup + call + teardown
    wall: list[float]  # the pytest process


@dataclass(frozen=True)
class TestSpeedResult:
    cold: Figure
    warm: Figure
    suite: PytestRun | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="pytest processes per figure")
    parser.add_argument("--test", default=NINETY_DAYS, help="the test to time (a pytest node id)")
    parser.add_argument(
        "--suite",
        action="store_true",
        help="also run the whole suite (`pytest -q` over tests/, several minutes)",
    )
    parser.add_argument(
        "--suite-args",
        default="",
        help="extra pytest arguments for --suite (e.g. '-x' or a folder instead of tests/)",
    )


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    result = measure(
        test=args.test, runs=args.runs, suite=args.suite, suite_args=args.suite_args.split()
    )
    print(machine_line(load))
    print(format_table(result, args.test))


def measure(
    *, test: str, runs: int, suite: bool = False, suite_args: list[str] | None = None
) -> TestSpeedResult:
    cold = _figure("cold (alone in its pytest process)", test, [test], runs)
    warm = _figure("warm (after one journey test)", test, [WARM_UP, test], runs)
    suite_run = None
    if suite:
        extra = suite_args or []
        # The whole of tests/ unless the extra arguments name what to run.
        targets = [] if any(not arg.startswith("-") for arg in extra) else ["tests"]
        suite_run = pytest_run([*targets, *extra, "--durations=5"])
    return TestSpeedResult(cold=cold, warm=warm, suite=suite_run)


def _figure(label: str, test: str, node_ids: list[str], runs: int) -> Figure:
    calls, totals, walls = [], [], []
    for _ in range(runs):
        result = pytest_run([*node_ids, "--durations=0", "--durations-min=0"])
        if result.returncode != 0:
            raise RuntimeError(f"pytest failed ({result.returncode}):\n{result.output}")
        calls.append(result.phase(test, "call"))
        totals.append(sum(result.phase(test, name) for name in ("setup", "call", "teardown")))
        walls.append(result.wall)
    return Figure(label=label, call=calls, total=totals, wall=walls)


def pytest_run(arguments: list[str]) -> PytestRun:
    """Run pytest in a fresh process at the project root; its durations, parsed."""
    began = time.perf_counter()
    completed = subprocess.run(
        [*PYTEST, "-q", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - began
    output = completed.stdout + completed.stderr
    phases = {(test, phase): float(seconds) for seconds, phase, test in _DURATION.findall(output)}
    summaries = _SUMMARY.findall(output)
    summary, reported = (summaries[-1][0], float(summaries[-1][1])) if summaries else ("", None)
    return PytestRun(
        wall=wall,
        returncode=completed.returncode,
        phases=phases,
        summary=summary,
        reported=reported,
        output=output,
    )


def format_table(result: TestSpeedResult, test: str) -> str:
    lines = [
        f"{test}",
        "(90 days of simulated time, time-skipping test server; seconds, median of "
        f"{len(result.cold.call)} pytest processes, min-max in brackets)",
        f"{'':38} {'call s':>16} {'setup+call+teardown s':>22} {'pytest process s':>17}",
    ]
    for figure in (result.cold, result.warm):
        lines.append(
            f"{figure.label:38} {_spread(figure.call):>16} {_spread(figure.total):>22} "
            f"{_spread(figure.wall):>17}"
        )
    warm = statistics.median(result.warm.call)
    verdict = "met" if warm < TARGET_SECONDS else "NOT met"
    lines.append(f"target: the 90-day test under {TARGET_SECONDS} s (warm call): {verdict}")
    if result.suite is not None:
        suite = result.suite
        reported = f"{suite.reported:.1f} s" if suite.reported is not None else "?"
        lines.append(
            f"whole suite: {suite.wall:.1f} s wall, pytest says {reported} "
            f"({suite.summary or 'no summary'}; exit code {suite.returncode})"
        )
        slowest = sorted(suite.phases.items(), key=lambda item: -item[1])[:5]
        for (name, phase), seconds in slowest:
            lines.append(f"  {seconds:7.2f} s {phase:8} {name}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.2f}"
    return f"{middle:.2f} [{min(values):.2f}-{max(values):.2f}]"
