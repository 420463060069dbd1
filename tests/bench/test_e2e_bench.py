"""The end-to-end scenario runs with tiny numbers and prints every figure (a smoke test, not a
timed one): the maximum ingest rate, the offered rate, both sides' p50/p99, every event's
email received, and the ratio."""

from __future__ import annotations

import argparse
import re

import pytest

from bench import e2e
from tests.conftest import POSTGRES_ADMIN_DSN, postgres_available


def test_e2e_scenario_mails_every_event_and_prints_each_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    e2e.add_arguments(parser)
    # The suite's PostgreSQL when reachable, as the bench defaults to; else a SQLite file.
    database = (
        ["--admin-dsn", POSTGRES_ADMIN_DSN] if postgres_available() else ["--database", "sqlite"]
    )
    e2e.run(
        parser.parse_args(
            ["--events", "6", "--calibrate", "8", "--warmup", "1", "--concurrency", "4", *database]
        )
    )
    out = capsys.readouterr().out

    assert re.search(r"max ingest rate .*: \d+\.\d events/s", out)
    offered = re.search(r"offered rate: (\d+\.\d) events/s, open loop, 6 events per side", out)
    assert offered and float(offered.group(1)) > 0
    for label in ("raw Temporal + aiosmtplib", "Journeyman POST /v1/events"):
        row = re.search(
            rf"^{re.escape(label)} +([\d.]+) +(\d+) +(\d+) +(\d+) +([\d.]+) +([\d.]+)", out, re.M
        )
        assert row, f"no row for {label}:\n{out}"
        rate, expected, accepted, received, p50, p99 = row.groups()
        assert float(rate) == float(offered.group(1))
        # Every accepted event's welcome email arrived at the sink.
        assert int(expected) == int(accepted) == int(received) == 6
        assert 0 < float(p50) <= float(p99)
    assert re.search(r"ratio Journeyman / raw +p50 \d+\.\d\d +p99 \d+\.\d\d", out)
    delivered = re.search(
        r"^delivered, first event to last email .*: raw Temporal \+ aiosmtplib ([\d.]+) emails/s, "
        r"Journeyman POST /v1/events ([\d.]+) emails/s$",
        out,
        re.M,
    )
    assert delivered, out
    # Six emails over a run no shorter than the pacing of six events at the offered rate.
    for rate in map(float, delivered.groups()):
        assert 0 < rate <= 6 / (5 / float(offered.group(1)))
    assert "CPU ms per event (server / api / worker / raw worker / bench)" in out
    for label in ("raw Temporal + aiosmtplib", "Journeyman POST /v1/events"):
        assert re.search(rf"^  {re.escape(label)} +(\d+\.\d\d +){{4}}\d+\.\d\d$", out, re.M)


def test_with_a_given_rate_and_no_raw_side_the_table_says_only_what_was_measured() -> None:
    # `--rate 8 --no-raw`: no maximum was measured and there is no baseline to divide by.
    side = e2e.Paced(
        label="Journeyman POST /v1/events",
        offered_rate=8.0,
        expected=4,
        accepted=4,
        received=4,
        latencies=[0.2, 0.1, 0.4, 0.3],
        accept_latencies=[0.05] * 4,
        mail_seconds=0.8,
    )
    table = e2e.format_table(e2e.E2EResult(offered_rate=8.0, journeyman=side, raw=None))

    assert "max ingest rate" not in table
    assert "offered rate: 8.0 events/s, open loop, 4 events per side" in table
    assert "raw Temporal" not in table and "ratio" not in table
    row = re.search(
        r"^Journeyman POST /v1/events +8\.0 +4 +4 +4 +([\d.]+) +([\d.]+) +400\.0", table, re.M
    )
    assert row, table
    assert float(row.group(1)) == 250.0  # the median of 100, 200, 300, 400 ms
    assert "Journeyman POST /v1/events 5.0 emails/s" in table  # 4 emails in 0.8 s
