"""The ingest scenario runs end to end with tiny numbers (a smoke test, not a timed one)."""

from __future__ import annotations

from bench.ingest import format_table, measure


async def test_ingest_scenario_counts_every_event_on_each_side() -> None:
    result = await measure(events=20, concurrency=4, batch_size=5, warmup=2, db="memory")

    assert result.raw.events == 20
    assert result.journeyman.events == 20
    assert result.batch.events == 20
    assert len(result.journeyman.latencies) == 20
    assert len(result.raw.latencies) == 20
    for side in (result.raw, result.journeyman, result.batch):
        assert side.rate > 0
        assert 0 < side.percentile(50) <= side.percentile(99)
    table = format_table(result)
    assert "ratio Journeyman / raw" in table
    assert "ratio batch / single" in table
    assert "CPU ratio raw / Journeyman" in table
