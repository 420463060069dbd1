"""One command for the benchmarks: `python -m bench` and `./benchmark` list every scenario,
`all` knows each one's small sizes, and a scenario not written yet is reported, not a crash."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bench import all as bench_all
from bench.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
EVERY = ("stats", "ingest", "runtime", "wakeup", "e2e", "testspeed", "all")


def _listed(help_text: str) -> set[str]:
    return {
        name for name in EVERY if f"\n    {name} " in help_text or f"\n    {name}\n" in help_text
    }


def test_python_m_bench_help_lists_every_scenario_and_all() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert _listed(completed.stdout) == set(EVERY)
    assert "not available" not in completed.stdout


def test_the_benchmark_script_runs_python_m_bench() -> None:
    script = ROOT / "benchmark"
    stamp = ROOT / ".venv" / ".journeyman-bench-installed"
    if not stamp.exists() or (ROOT / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        pytest.skip("./benchmark would (re)install .venv first; run it once by hand")
    completed = subprocess.run(
        [str(script), "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert _listed(completed.stdout) == set(EVERY)


def test_each_scenario_builds_its_options() -> None:
    # Every scenario's parser parses its own defaults (no required option without a default).
    parser = build_parser()
    for name in EVERY:
        assert parser.parse_args([name]).benchmark == name


@pytest.mark.parametrize("name", bench_all.SCENARIOS)
def test_every_quick_size_is_an_option_of_its_scenario(name: str) -> None:
    module = __import__(f"bench.{name}", fromlist=["add_arguments"])
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    _args, unknown = parser.parse_known_args(bench_all.QUICK[name])
    assert unknown == []


def test_the_full_run_times_the_whole_suite_unless_told_not_to() -> None:
    assert bench_all.scenario_arguments("testspeed", quick=False, suite=True) == ["--suite"]
    assert bench_all.scenario_arguments("testspeed", quick=False, suite=False) == []
    assert bench_all.scenario_arguments("e2e", quick=False, suite=True) == []
    assert "--suite" not in bench_all.scenario_arguments("testspeed", quick=True, suite=True)


def test_a_scenario_not_written_yet_is_reported_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = bench_all.run_one("not_a_scenario", [])

    assert outcome.status == "missing"
    assert "not_a_scenario: missing" in capsys.readouterr().out


def test_a_failing_scenario_is_reported_and_does_not_stop_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A PostgreSQL that is not there: stats cannot create its database.
    admin_dsn = "postgresql://postgres@127.0.0.1:1/test"
    outcome = bench_all.run_one("stats", ["--admin-dsn", admin_dsn])

    assert outcome.status.startswith("failed: OperationalError")
    assert f"== stats: python -m bench stats --admin-dsn {admin_dsn}" in capsys.readouterr().out
