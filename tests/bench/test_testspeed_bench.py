"""The test-speed scenario times the 90-day test cold and warm, and a suite run, and prints
each figure (a smoke test: no timing is asserted)."""

from __future__ import annotations

import argparse
import re

import pytest

from bench import testspeed

SMALL_SUITE = "tests/journeys/test_birthday.py::test_birthdays_read_as_month_and_day"


def test_testspeed_prints_the_ninety_day_test_cold_and_warm_and_the_suite(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    testspeed.add_arguments(parser)
    testspeed.run(parser.parse_args(["--runs", "1", "--suite", "--suite-args", SMALL_SUITE]))
    out = capsys.readouterr().out

    assert testspeed.NINETY_DAYS in out
    for label in ("cold (alone in its pytest process)", "warm (after one journey test)"):
        # call, setup+call+teardown and the pytest process, each a positive number of seconds.
        row = re.search(rf"^{re.escape(label)} +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
        assert row, f"no row for {label}:\n{out}"
        call, total, wall = map(float, row.groups())
        assert 0 < call <= total < wall
    assert re.search(r"target: the 90-day test under 0.5 s \(warm call\): (met|NOT met)", out)
    # pytest's own summary and time, read from its output.
    suite = re.search(r"whole suite: ([\d.]+) s wall, pytest says ([\d.]+) s \(1 passed;", out)
    assert suite, out
    assert float(suite.group(2)) < float(suite.group(1))
