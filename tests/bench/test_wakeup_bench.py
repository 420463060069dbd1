"""The peak wake-up scenario runs end to end with tiny numbers (a smoke test, not a timed
one): every enrollment sends once on each side and the table prints every figure."""

from __future__ import annotations

import re

from bench.wakeup import format_table, measure


async def test_wakeup_scenario_sends_once_per_enrollment_on_each_side() -> None:
    result = await measure(
        enrollments=5,
        db="memory",
        concurrency=5,
        warmup=2,
        timeout=60.0,
        database="sqlite",
        mail="smtp",
        margin=2.0,
    )

    for side in (result.raw, result.journeyman):
        assert side.enrollments == 5
        assert len(side.lateness) == 5
        # Nothing sends before its due time.
        assert min(side.lateness) >= 0
        assert side.drain_seconds == max(side.lateness)
        assert 0 <= side.percentile(50) <= side.percentile(99)
        assert side.server_rss > 0 and side.worker_rss > 0
        assert side.worker_cpu > 0
    lines = format_table(result).splitlines()
    for label in ("raw Temporal sleep", "Journeyman wait"):
        (row,) = (line for line in lines if line.startswith(label))
        figures = re.findall(r"\d+(?:\.\d+)?(?:/\d+)?", row[len(label) :])
        assert len(figures) == 8, row
    assert any(line.startswith("ratio drain JM / raw") for line in lines)
