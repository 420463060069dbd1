"""Scenario 1, ingest: `POST /v1/events` over HTTP against the raw SDK's signal-with-start.

One fresh Temporal dev server (in memory, or file-backed with the WAL pragmas of `journeyman
dev`), one fresh migrated SQLite database and the real API app under uvicorn in a subprocess.
No worker runs: this measures intake, and a worker executing the started enrollments would
take CPU from both sides on a small machine. The enrollments wait, unexecuted, on the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from bench.harness import (
    API_KEY,
    TASK_QUEUE,
    Side,
    api_command,
    api_env,
    api_ready,
    connected,
    free_port,
    running,
    temporal_command,
    timed,
)
from persistence import migrate
from workflows import catalog
from workflows.contracts import EVENT_SIGNAL, EnrollmentInput, Event, workflow_id_for
from workflows.runtime import journey_search_attributes

JOURNEY = "welcome_series"
TRIGGER = "signed_up"


@dataclass(frozen=True)
class IngestResult:
    journeyman: Side
    raw: Side
    batch: Side
    batch_size: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=2000, help="events per side")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50, help="uncounted events per side")
    parser.add_argument("--db", choices=("memory", "file"), default="memory")


def run(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 0
    load = os.getloadavg()
    result = asyncio.run(
        measure(
            events=args.events,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            warmup=args.warmup,
            db=args.db,
        )
    )
    print(f"machine: {cores} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"temporal dev server ({args.db}), {args.events} events per side, "
        f"concurrency {args.concurrency}, no worker"
    )
    print(format_table(result))


def format_table(result: IngestResult) -> str:
    jm, raw, batch = result.journeyman, result.raw, result.batch
    rows = [
        f"{'':32} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}",
        _row("raw SDK signal-with-start", raw),
        _row("Journeyman POST /v1/events", jm),
        _row(f"Journeyman batch of {result.batch_size}", batch, per_call=True),
        f"{'ratio Journeyman / raw':32} {jm.rate / raw.rate:9.2f}",
        f"{'ratio batch / single':32} {batch.rate / jm.rate:9.2f}",
        "CPU ms per event (server / api / bench process):",
        _cpu_row("raw SDK signal-with-start", raw),
        _cpu_row("Journeyman POST /v1/events", jm),
        _cpu_row(f"Journeyman batch of {result.batch_size}", batch),
    ]
    return "\n".join(rows)


def _row(label: str, side: Side, per_call: bool = False) -> str:
    suffix = "  (latency per batch)" if per_call else ""
    return (
        f"{label:32} {side.rate:9.1f} {side.percentile(50) * 1000:8.1f} "
        f"{side.percentile(99) * 1000:8.1f}{suffix}"
    )


def _cpu_row(label: str, side: Side) -> str:
    parts = [
        f"{side.cpu.get(name, 0.0) * 1000 / max(side.events, 1):8.2f}"
        for name in ("server", "api", "bench")
    ]
    return f"  {label:30} " + " ".join(parts)


async def measure(
    *, events: int, concurrency: int, batch_size: int, warmup: int, db: str
) -> IngestResult:
    with tempfile.TemporaryDirectory(prefix="journeyman-bench-") as tmp:
        directory = Path(tmp)
        database_url = f"sqlite:///{directory / 'journeyman.db'}"
        migrate(database_url)
        temporal_port = free_port()
        api_port = free_port()
        with (
            running(
                temporal_command(temporal_port, directory, db), directory / "temporal.log"
            ) as server,
            running(
                api_command(api_port),
                directory / "api.log",
                env=api_env(directory, database_url, temporal_port),
            ) as api,
        ):
            processes = {"server": server.pid, "api": api.pid, "bench": os.getpid()}
            client = await connected(f"127.0.0.1:{temporal_port}")
            base_url = f"http://127.0.0.1:{api_port}"
            limits = httpx.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            )
            async with httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {API_KEY}"},
                limits=limits,
                timeout=60.0,
            ) as http:
                await api_ready(http)
                run_id = uuid.uuid4().hex[:8]

                async def post(index: int, tag: str) -> None:
                    response = await http.post("/v1/events", json=_event_json(tag, index))
                    response.raise_for_status()

                async def raw(index: int, tag: str) -> None:
                    await raw_signal_with_start(client, _event(tag, index))

                async def post_batch(index: int, tag: str) -> None:
                    first = index * batch_size
                    body = {
                        "events": [_event_json(tag, first + i) for i in range(batch_size)],
                    }
                    response = await http.post("/v1/events/batch", json=body)
                    response.raise_for_status()

                # Warm up each side (connections, the app's first imports, the server's
                # caches), then measure; the raw side first, as the reference.
                await timed(raw, warmup, concurrency, f"{run_id}-rw")
                raw_side = await timed(raw, events, concurrency, f"{run_id}-r", processes)
                await timed(post, warmup, concurrency, f"{run_id}-jw")
                jm_side = await timed(post, events, concurrency, f"{run_id}-j", processes)
                batches = max(1, events // batch_size)
                await timed(post_batch, 1, 1, f"{run_id}-bw")
                batch_calls = await timed(
                    post_batch,
                    batches,
                    max(1, min(concurrency, batches)),
                    f"{run_id}-b",
                    processes,
                )
                batch_side = Side(
                    events=batch_calls.events * batch_size,
                    seconds=batch_calls.seconds,
                    latencies=batch_calls.latencies,
                    cpu=batch_calls.cpu,
                )
    return IngestResult(jm_side, raw_side, batch_side, batch_size)


async def raw_signal_with_start(client: Client, event: Event) -> None:
    """What a team would write on plain Temporal: one signal-with-start per trigger event,
    same workflow type, id scheme and search attributes as Journeyman's enrollments."""
    cls = catalog.get(JOURNEY)
    await client.start_workflow(
        cls.workflow_type(),
        EnrollmentInput(contact_id=event.contact_id, trigger=event),
        id=workflow_id_for(cls.name, event.contact_id),
        task_queue=TASK_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=journey_search_attributes(cls, event.contact_id),
        start_signal=EVENT_SIGNAL,
        start_signal_args=[event],
    )


def _contact(tag: str, index: int) -> str:
    return f"bench-{tag}-{index}"


def _event(tag: str, index: int) -> Event:
    return Event(
        id=f"evt-{tag}-{index}",
        contact_id=_contact(tag, index),
        name=TRIGGER,
        properties={"plan": "pro"},
        occurred_at=datetime.now(UTC),
    )


def _event_json(tag: str, index: int) -> dict[str, object]:
    return {
        "id": f"evt-{tag}-{index}",
        "contact_id": _contact(tag, index),
        "name": TRIGGER,
        "properties": {"plan": "pro"},
    }
