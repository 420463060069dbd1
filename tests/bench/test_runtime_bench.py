"""The runtime-overhead scenario runs end to end with tiny numbers (a smoke test, not a timed
one): every journey completes on both sides and the table prints every figure."""

from __future__ import annotations

import re

from bench.runtime import format_table, measure


async def test_runtime_scenario_completes_every_journey_on_each_side() -> None:
    result = await measure(
        contacts=4,
        db="memory",
        wait=0.1,
        wait_for=0.1,
        concurrency=4,
        warmup=1,
        rounds=2,
        database="sqlite",
    )

    for side in (result.raw, result.journeyman):
        assert side.journeys == 4
        assert side.rate > 0
        assert side.worker_cpu > 0
        assert side.worker_peak_rss > 0
        # No reply is signalled unless asked for: every wait_for times out, on both sides.
        assert side.replied == 0
    lines = format_table(result).splitlines()
    assert lines[0].split()[:2] == ["journeys/s", "seconds"]
    for label in ("raw Temporal workflow", "Journeyman runtime"):
        (row,) = (line for line in lines if line.startswith(label))
        figures = re.findall(r"\d+\.\d+|\d+/\d+|\b\d+\b", row[len(label) :])
        assert len(figures) == 6, row
    assert any(line.startswith("ratio Journeyman / raw") for line in lines)
    assert any(line.startswith("worker CPU Journeyman/raw") for line in lines)
