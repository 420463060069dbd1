"""Scenario 2, runtime overhead: a journey written with Journeyman's runtime against the same
journey hand-written on plain Temporal, both sending real email through the same activity.

The journey is send -> wait -> wait_for -> send (bench/journeys.py). One fresh dev server, one
fresh database with the contacts (PostgreSQL, or SQLite), a local SMTP sink in this process,
and each side's worker in a process of its own (so its CPU and memory are its own). After a
warm-up, the sides take turns (`--rounds`, raw first), each starting its share of the journeys
at once and waiting for every result, so a change in the machine's load falls on both alike.
The wait_for times out, unless `--reply-after` has the bench signal a reply that long after a
contact's first email lands (a reply that beats the end of the wait does not count, on either
side).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.harness import connected, cpu_seconds, machine_line, running, temporal_command
from bench.journeys import REPLY, WAIT, WAIT_FOR, RuntimeJourney
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
from journeyman.ports import free_port
from workflows.contracts import EVENT_SIGNAL, Event

RAW_TYPE = "bench_raw_runtime"
MB = 1024 * 1024


@dataclass(frozen=True)
class RuntimeSide:
    journeys: int
    seconds: float
    worker_cpu: float
    server_cpu: float
    worker_peak_rss: int
    replied: int  # wait_for answered by the signal (the rest timed out)

    @property
    def rate(self) -> float:
        return self.journeys / self.seconds


@dataclass(frozen=True)
class RuntimeResult:
    raw: RuntimeSide
    journeyman: RuntimeSide


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--contacts", type=int, default=400, help="journeys per side")
    parser.add_argument(
        "--db", choices=("memory", "file"), default="memory", help="the Temporal server's store"
    )
    add_database_arguments(parser)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds of the wait step")
    parser.add_argument(
        "--wait-for", type=float, default=1.0, help="seconds before the wait_for times out"
    )
    parser.add_argument(
        "--reply-after",
        type=float,
        default=0.0,
        help="signal the reply this many seconds after a contact's first email (0: none, "
        "the wait_for times out)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="turns each side takes")
    parser.add_argument("--concurrency", type=int, default=32, help="starts in flight")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted journeys per side")


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    result = asyncio.run(
        measure(
            contacts=args.contacts,
            db=args.db,
            database=args.database,
            admin_dsn=args.admin_dsn,
            wait=args.wait,
            wait_for=args.wait_for,
            concurrency=args.concurrency,
            warmup=args.warmup,
            rounds=args.rounds,
            reply_after=args.reply_after,
        )
    )
    print(machine_line(load))
    print(
        f"temporal dev server ({args.db}), {args.contacts} journeys per side "
        f"(send, wait {args.wait:g}s, wait_for up to {args.wait_for:g}s, send)"
    )
    print(format_table(result))


def format_table(result: RuntimeResult) -> str:
    raw, jm = result.raw, result.journeyman
    header = (
        f"{'':26} {'journeys/s':>10} {'seconds':>8} {'worker CPU ms/journey':>22} "
        f"{'server CPU ms/journey':>22} {'worker peak RSS MB':>19} {'replied':>8}"
    )
    rows = [header, _row("raw Temporal workflow", raw), _row("Journeyman runtime", jm)]
    rows.append(f"{'ratio Journeyman / raw':26} {jm.rate / raw.rate:10.2f}")
    rows.append(
        f"{'worker CPU Journeyman/raw':26} {jm.worker_cpu / max(raw.worker_cpu, 1e-9):10.2f}"
    )
    return "\n".join(rows)


def _row(label: str, side: RuntimeSide) -> str:
    per = 1000 / max(side.journeys, 1)
    return (
        f"{label:26} {side.rate:10.1f} {side.seconds:8.1f} {side.worker_cpu * per:22.1f} "
        f"{side.server_cpu * per:22.1f} {side.worker_peak_rss / MB:19.0f} "
        f"{side.replied:>4}/{side.journeys}"
    )


async def measure(
    *,
    contacts: int,
    db: str,
    wait: float,
    wait_for: float,
    concurrency: int,
    warmup: int,
    rounds: int = 2,
    reply_after: float = 0.0,
    database: str = "postgres",
    admin_dsn: str = ADMIN_DSN,
) -> RuntimeResult:
    tag = uuid.uuid4().hex[:6]
    names = {
        (side, phase): [f"{side[0]}{phase}-{tag}-{i}" for i in range(count)]
        for side in SIDES
        for phase, count in (("w", warmup), ("t", contacts))
    }
    everyone = [c for ids in names.values() for c in ids]
    properties: dict[str, Any] = {WAIT: wait, WAIT_FOR: wait_for}
    with (
        tempfile.TemporaryDirectory(prefix="journeyman-bench-") as tmp,
        bench_database(database, Path(tmp), everyone, admin_dsn) as database_url,
    ):
        directory = Path(tmp)
        port = free_port()
        with running(temporal_command(port, directory, db), directory / "temporal.log") as server:
            client = await connected(f"127.0.0.1:{port}")
            replies: set[asyncio.Task[None]] = set()

            def reply(contact_id: str) -> None:
                if reply_after > 0:
                    task = asyncio.create_task(_reply(client, contact_id, reply_after))
                    replies.add(task)
                    task.add_done_callback(replies.discard)

            with Mailbox(on_first=reply) as mailbox:
                async with contextlib.AsyncExitStack() as stack:
                    runs: dict[str, _Journeys] = {}
                    for side in SIDES:
                        env = worker_env(
                            directory=directory,
                            database_url=database_url,
                            temporal_port=port,
                            smtp_port=mailbox.port,
                            task_queue=f"bench-{side}-{tag}",
                        )
                        worker = await stack.enter_async_context(side_worker(side, directory, env))
                        runs[side] = _Journeys(
                            client, side, env["JOURNEYMAN_TASK_QUEUE"], concurrency, worker
                        )
                        await runs[side](names[side, "w"], properties)
                    # Rounds in turn, so that a change in the machine's load while this runs
                    # (other work on the host) falls on both sides alike.
                    parts: dict[str, list[RuntimeSide]] = {side: [] for side in SIDES}
                    for number in range(rounds):
                        for side in SIDES:
                            ids = names[side, "t"][number::rounds]
                            parts[side].append(await runs[side].timed(ids, properties, server.pid))
    joined = {side: _joined(parts[side]) for side in SIDES}
    return RuntimeResult(raw=joined["raw"], journeyman=joined["journeyman"])


def _joined(parts: list[RuntimeSide]) -> RuntimeSide:
    return RuntimeSide(
        journeys=sum(p.journeys for p in parts),
        seconds=sum(p.seconds for p in parts),
        worker_cpu=sum(p.worker_cpu for p in parts),
        server_cpu=sum(p.server_cpu for p in parts),
        worker_peak_rss=max(p.worker_peak_rss for p in parts),
        replied=sum(p.replied for p in parts),
    )


@dataclass(frozen=True)
class _Journeys:
    """Start one side's journeys for some contacts and wait for every result."""

    client: Client
    side: str
    task_queue: str
    concurrency: int
    worker: int  # the worker process's pid

    async def timed(
        self, contact_ids: list[str], properties: dict[str, Any], server: int
    ) -> RuntimeSide:
        sampler = Sampler({"worker": self.worker})
        sampling = asyncio.create_task(sampler.run())
        cpu = cpu_seconds(self.worker), cpu_seconds(server)
        began = time.perf_counter()
        results = await self(contact_ids, properties)
        seconds = time.perf_counter() - began
        sampling.cancel()
        return RuntimeSide(
            journeys=len(results),
            seconds=seconds,
            worker_cpu=cpu_seconds(self.worker) - cpu[0],
            server_cpu=cpu_seconds(server) - cpu[1],
            worker_peak_rss=max(sampler.peak["worker"], sampler.sample()["worker"]),
            replied=sum(_replied(r) for r in results),
        )

    async def __call__(self, contact_ids: list[str], properties: dict[str, Any]) -> list[Any]:
        handles = await start_all(
            self.client,
            side=self.side,
            journey=RuntimeJourney,
            raw_type=RAW_TYPE,
            contact_ids=contact_ids,
            properties=properties,
            task_queue=self.task_queue,
            concurrency=self.concurrency,
        )
        return list(await asyncio.gather(*(handle.result() for handle in handles)))


async def _reply(client: Client, contact_id: str, delay: float) -> None:
    await asyncio.sleep(delay)
    side = "journeyman" if contact_id.startswith("j") else "raw"
    event = Event(id=f"reply-{contact_id}", contact_id=contact_id, name=REPLY)
    await client.get_workflow_handle(f"{side}-{contact_id}").signal(EVENT_SIGNAL, event)


def _replied(result: Any) -> bool:
    if isinstance(result, str):  # the raw workflow's
        return result == "replied"
    steps = result.get("steps", []) if isinstance(result, dict) else []
    return any(str(step.get("outcome", "")).startswith("received") for step in steps)
