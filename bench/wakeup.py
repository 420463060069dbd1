"""Scenario 3, peak wake-up: many enrollments asleep on timers that all fire at one due time,
then each sends an email; Journeyman's `wait` against a plain `workflow.sleep`.

Each side gets its own fresh dev server and its own worker process, raw first, so neither
side's histories weigh on the other's server (memory is one of the figures). One fresh
database (PostgreSQL, or SQLite) and one SMTP sink (in this process) serve both. Per side:

1. warm-up: `--warmup` enrollments due a few seconds after their start, which also measures
   how fast this machine starts them;
2. `--enrollments` enrollments started at once, all due at one instant far enough ahead for
   every start to be done by then (from the warm-up's start rate);
3. two seconds before the due time, the server's and the worker's resident memory (and the
   peaks over the whole side); from the due time, the drain: when each enrollment closed after
   its send (the server's visibility store), the last one and the lateness p50, p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from bench.harness import connected, cpu_seconds, machine_line, running, temporal_command
from bench.journeys import DUE, WakeupJourney
from bench.stack import (
    ADMIN_DSN,
    SIDES,
    Mailbox,
    Sampler,
    add_database_arguments,
    bench_database,
    side_worker,
    start_all,
    worker_env,
)
from bench.worker_process import MAILER
from journeyman.ports import free_port

RAW_TYPE = "bench_raw_wakeup"
MB = 1024 * 1024
WARMUP_DUE = 3.0
# Extra seconds between the expected end of the starts and the due time.
MARGIN = 20.0


@dataclass(frozen=True)
class WakeupSide:
    enrollments: int
    start_seconds: float
    server_rss: int  # just before the due time
    worker_rss: int
    server_peak_rss: int  # over the starts, the wait and the drain
    worker_peak_rss: int
    drain_seconds: float  # due time -> last email received
    lateness: list[float]  # per email, seconds after the due time
    worker_cpu: float  # during the drain
    started_late: bool  # the starts took past the due time (the warm-up misjudged the rate)

    def percentile(self, q: int) -> float:
        if len(self.lateness) < 2:
            return self.lateness[0] if self.lateness else 0.0
        return statistics.quantiles(self.lateness, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class WakeupResult:
    raw: WakeupSide
    journeyman: WakeupSide


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enrollments", type=int, default=5000, help="enrollments per side")
    parser.add_argument(
        "--db", choices=("memory", "file"), default="memory", help="the Temporal server's store"
    )
    add_database_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=64, help="starts in flight")
    parser.add_argument("--warmup", type=int, default=300, help="uncounted enrollments per side")
    parser.add_argument(
        "--mail",
        choices=("smtp", "none"),
        default="none",
        help="smtp: each send goes to a local SMTP sink; none: the send activity's whole path "
        "(consent, rendering, the message log) except the SMTP call",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the last email"
    )


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    result = asyncio.run(
        measure(
            enrollments=args.enrollments,
            db=args.db,
            database=args.database,
            admin_dsn=args.admin_dsn,
            concurrency=args.concurrency,
            warmup=args.warmup,
            timeout=args.timeout,
            mail=args.mail,
        )
    )
    print(machine_line(load))
    print(
        f"temporal dev server ({args.db}, a fresh one per side), {args.enrollments} enrollments "
        "per side, all due at one instant, then one email each"
    )
    print(format_table(result))


def format_table(result: WakeupResult) -> str:
    raw, jm = result.raw, result.journeyman
    header = (
        f"{'':22} {'start s':>8} {'server MB':>10} {'worker MB':>10} {'peak srv/wkr MB':>16} "
        f"{'drain s':>8} {'late p50 s':>11} {'late p99 s':>11} {'worker CPU ms/send':>19}"
    )
    rows = [header, _row("raw Temporal sleep", raw), _row("Journeyman wait", jm)]
    rows.append(
        f"{'ratio drain JM / raw':22} {jm.drain_seconds / max(raw.drain_seconds, 1e-9):8.2f}"
    )
    if raw.started_late or jm.started_late:
        rows.append("warning: the starts ran past the due time; lateness includes them")
    return "\n".join(rows)


def _row(label: str, side: WakeupSide) -> str:
    peaks = f"{side.server_peak_rss / MB:.0f}/{side.worker_peak_rss / MB:.0f}"
    return (
        f"{label:22} {side.start_seconds:8.1f} {side.server_rss / MB:10.0f} "
        f"{side.worker_rss / MB:10.0f} {peaks:>16} {side.drain_seconds:8.1f} "
        f"{side.percentile(50):11.2f} {side.percentile(99):11.2f} "
        f"{side.worker_cpu * 1000 / max(side.enrollments, 1):19.1f}"
    )


async def measure(
    *,
    enrollments: int,
    db: str,
    concurrency: int,
    warmup: int,
    timeout: float,  # noqa: ASYNC109
    database: str = "postgres",
    admin_dsn: str = ADMIN_DSN,
    mail: str = "none",
    margin: float = MARGIN,
) -> WakeupResult:
    tag = uuid.uuid4().hex[:6]
    names = {
        (side, phase): [f"{side[0]}{phase}-{tag}-{i}" for i in range(count)]
        for side in SIDES
        for phase, count in (("w", warmup), ("t", enrollments))
    }
    everyone = [c for ids in names.values() for c in ids]
    with (
        tempfile.TemporaryDirectory(prefix="journeyman-bench-") as tmp,
        bench_database(database, Path(tmp), everyone, admin_dsn) as database_url,
    ):
        directory = Path(tmp)
        sides: dict[str, WakeupSide] = {}
        with Mailbox() as mailbox:
            for side in SIDES:
                side_dir = directory / side
                side_dir.mkdir()
                sides[side] = await _side(
                    side,
                    side_dir,
                    database_url=database_url,
                    mailbox=mailbox,
                    warmup=names[side, "w"],
                    contacts=names[side, "t"],
                    db=db,
                    concurrency=concurrency,
                    timeout=timeout,
                    mail=mail,
                    margin=margin,
                )
    return WakeupResult(raw=sides["raw"], journeyman=sides["journeyman"])


async def _side(
    side: str,
    directory: Path,
    *,
    database_url: str,
    mailbox: Mailbox,
    warmup: list[str],
    contacts: list[str],
    db: str,
    concurrency: int,
    timeout: float,  # noqa: ASYNC109
    mail: str,
    margin: float,
) -> WakeupSide:
    port = free_port()
    task_queue = f"bench-{side}"
    with running(temporal_command(port, directory, db), directory / "temporal.log") as server:
        client = await connected(f"127.0.0.1:{port}")
        env = worker_env(
            directory=directory,
            database_url=database_url,
            temporal_port=port,
            smtp_port=mailbox.port,
            task_queue=task_queue,
        )
        env[MAILER] = mail
        async with side_worker(side, directory, env) as worker:

            async def start(ids: list[str], due: float) -> float:
                began = time.time()
                await start_all(
                    client,
                    side=side,
                    journey=WakeupJourney,
                    raw_type=RAW_TYPE,
                    contact_ids=ids,
                    properties={DUE: datetime.fromtimestamp(due, UTC).isoformat()},
                    task_queue=task_queue,
                    concurrency=concurrency,
                )
                return time.time() - began

            # The warm-up: how fast do starts go here, with this side's worker busy too?
            warm_seconds = await start(warmup, time.time() + WARMUP_DUE)
            await _closed_times(client, task_queue, len(warmup), timeout)
            rate = len(warmup) / max(warm_seconds, 1e-3) if warmup else 200.0
            due = time.time() + len(contacts) / rate * 1.2 + margin

            sampler = Sampler({"server": server.pid, "worker": worker})
            sampling = asyncio.create_task(sampler.run())
            start_seconds = await start(contacts, due)
            started_late = time.time() > due
            await asyncio.sleep(max(0.0, due - 2.0 - time.time()))
            waiting = sampler.sample()
            await asyncio.sleep(max(0.0, due - time.time()))
            cpu = cpu_seconds(worker)
            closed = await _closed_times(client, task_queue, len(warmup) + len(contacts), timeout)
            worker_cpu = cpu_seconds(worker) - cpu
            sampling.cancel()
    done = [closed[f"{side}-{contact}"] for contact in contacts]
    return WakeupSide(
        enrollments=len(contacts),
        start_seconds=start_seconds,
        server_rss=waiting["server"],
        worker_rss=waiting["worker"],
        server_peak_rss=sampler.peak["server"],
        worker_peak_rss=sampler.peak["worker"],
        drain_seconds=max(done) - due,
        lateness=[at - due for at in done],
        worker_cpu=worker_cpu,
        started_late=started_late,
    )


async def _closed_times(
    client: Client,
    task_queue: str,
    count: int,
    timeout: float,  # noqa: ASYNC109
) -> dict[str, float]:
    """Once `count` workflows of the queue have completed: when each closed (epoch seconds),
    by workflow id, from the server's visibility store."""
    query = f'TaskQueue="{task_queue}" AND ExecutionStatus="Completed"'
    deadline = time.monotonic() + timeout
    while (await client.count_workflows(query)).count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} enrollments completed on {task_queue}")
        await asyncio.sleep(0.5)
    return {
        execution.id: execution.close_time.timestamp()
        async for execution in client.list_workflows(query, page_size=1000)
        if execution.close_time is not None
    }
