"""Scenario 1, ingest: `POST /v1/events` over HTTP against the raw SDK's signal-with-start.

One fresh Temporal dev server (in memory, or file-backed with the WAL pragmas of `journeyman
dev`), one fresh migrated SQLite database and the real API app under uvicorn in a subprocess.
No worker runs: this measures intake, and a worker executing the started enrollments would
take CPU from both sides on a small machine. The enrollments wait, unexecuted, on the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from bench.harness import (
    API_KEY,
    TASK_QUEUE,
    Side,
    api_command,
    api_env,
    combined,
    connected,
    machine_line,
    running,
    temporal_command,
    timed,
)
from journeyman.ports import free_port
from persistence import migrate
from workflows import catalog
from workflows.contracts import EVENT_SIGNAL, EnrollmentInput, Event, workflow_id_for
from workflows.runtime import journey_search_attributes

JOURNEY = "welcome_series"
TRIGGER = "signed_up"
# Each side runs in this many parts, interleaved (see `_measure_sides`).
ROUNDS = 6


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
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="parts each side runs in, interleaved"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="directory for py-spy profiles (collapsed stacks) of the API process during the "
        "timed Journeyman sides",
    )


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    result = asyncio.run(
        measure(
            events=args.events,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            warmup=args.warmup,
            db=args.db,
            rounds=args.rounds,
            profile=args.profile,
        )
    )
    print(machine_line(load))
    print(
        f"temporal dev server ({args.db}), {args.events} events per side, "
        f"concurrency {args.concurrency}, no worker, sides interleaved in {args.rounds} rounds"
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
        # What the rates would say on a box with nothing else running: every process's CPU
        # per event, raw's total over ours (the rates above move with other work's load).
        f"{'CPU ratio raw / Journeyman':32} {_cpu_total(raw) / _cpu_total(jm):9.2f}",
        f"{'CPU ratio raw / batch':32} {_cpu_total(raw) / _cpu_total(batch):9.2f}",
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


def _cpu_total(side: Side) -> float:
    """CPU seconds per event, all measured processes together."""
    return max(sum(side.cpu.values()), 1e-9) / max(side.events, 1)


def _cpu_row(label: str, side: Side) -> str:
    parts = [
        f"{side.cpu.get(name, 0.0) * 1000 / max(side.events, 1):8.2f}"
        for name in ("server", "api", "bench")
    ]
    return f"  {label:30} " + " ".join(parts)


async def measure(
    *,
    events: int,
    concurrency: int,
    batch_size: int,
    warmup: int,
    db: str,
    rounds: int = ROUNDS,
    profile: Path | None = None,
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
            plan = Plan(events, concurrency, batch_size, warmup, max(1, rounds))
            try:
                client = await connected(f"127.0.0.1:{temporal_port}")
                async with LeanHttp("127.0.0.1", api_port, concurrency) as http:
                    await http.ready()
                    with profiled(api.pid, profile):
                        return await _measure_sides(client, http, plan, processes)
            except BaseException:
                # The temp dir goes with the failure: show why the API failed while it exists.
                print(f"--- tail of the API log ---\n{_log_tail(directory / 'api.log')}")
                raise


@dataclass(frozen=True)
class Plan:
    events: int
    concurrency: int
    batch_size: int
    warmup: int
    rounds: int


async def _measure_sides(
    client: Client, http: LeanHttp, plan: Plan, processes: dict[str, int]
) -> IngestResult:
    """Each side in `plan.rounds` parts, the sides in a rotating order from part to part.

    The server gets slower as runs pile up on its queue (nothing executes them), so a side
    measured last would pay for the runs of the sides before it; interleaving spreads that
    evenly over the three sides."""
    run_id = uuid.uuid4().hex[:8]
    size = plan.batch_size

    async def post(index: int, tag: str) -> None:
        await http.post("/v1/events", _event_json(tag, index))

    async def raw(index: int, tag: str) -> None:
        await raw_signal_with_start(client, _event(tag, index))

    async def post_batch(index: int, tag: str) -> None:
        first = index * size
        body = {"events": [_event_json(tag, first + i) for i in range(size)]}
        await http.post("/v1/events/batch", body)

    # Warm up each side (connections, the app's first imports, the server's caches).
    await timed(raw, plan.warmup, plan.concurrency, f"{run_id}-rw")
    await timed(post, plan.warmup, plan.concurrency, f"{run_id}-jw")
    await timed(post_batch, 1, 1, f"{run_id}-bw")

    single_parts = _split(plan.events, plan.rounds)
    batch_parts = _split(max(1, plan.events // size), plan.rounds)
    measured: dict[str, list[Side]] = {"raw": [], "single": [], "batch": []}
    for number in range(plan.rounds):
        order = ["raw", "single", "batch"]
        order = order[number % 3 :] + order[: number % 3]
        for name in order:
            tag = f"{run_id}-{name[0]}{number}"
            if name == "batch":
                count = batch_parts[number]
                if count:
                    calls = await timed(
                        post_batch, count, min(plan.concurrency, count), tag, processes
                    )
                    measured[name].append(_per_event(calls, size))
                continue
            count = single_parts[number]
            if count:
                call = raw if name == "raw" else post
                measured[name].append(await timed(call, count, plan.concurrency, tag, processes))
    return IngestResult(
        journeyman=combined(measured["single"]),
        raw=combined(measured["raw"]),
        batch=combined(measured["batch"]),
        batch_size=size,
    )


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def _per_event(calls: Side, size: int) -> Side:
    """Batch calls counted in events (latencies stay per call)."""
    return Side(
        events=calls.events * size, seconds=calls.seconds, latencies=calls.latencies, cpu=calls.cpu
    )


@contextlib.contextmanager
def profiled(pid: int, directory: Path | None) -> Iterator[None]:
    """py-spy sampling `pid` for the block (collapsed stacks, for flame graphs or a grep)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command += ["--output", str(directory / "api.txt"), "--nonblocking"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LeanHttp:
    """The load generator's HTTP/1.1 client: keep-alive connections, one request at a time
    each, Content-Length bodies (what uvicorn answers here).

    httpx spends ~3 ms of CPU per request, more than the API itself; on a 2-core box that
    CPU is taken from the processes being measured. This client spends a fraction of it, so
    the figures say more about the API and less about the load tool (the bench column of the
    CPU table shows what it costs)."""

    def __init__(self, host: str, port: int, connections: int) -> None:
        self._host = host
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._limit = asyncio.Semaphore(connections)
        self._head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()

    async def __aenter__(self) -> LeanHttp:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def post(self, path: str, body: object) -> bytes:
        status, answer = await self.request("POST", path, json.dumps(body).encode())
        if status >= 300:
            raise RuntimeError(f"POST {path}: {status} {answer[:500]!r}")
        return answer

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        async with self._limit:
            while self._idle:
                # uvicorn closes connections idle for 5 s: a closed one answers nothing (the
                # request was not read), so it is dropped and the next one tried.
                connection = self._idle.pop()
                answer = await self._exchange(connection, method, path, body)
                if answer is not None:
                    return answer
            fresh = await asyncio.open_connection(self._host, self._port)
            answer = await self._exchange(fresh, method, path, body)
            if answer is None:
                raise ConnectionError(f"{method} {path}: the API closed the connection")
            return answer

    async def _exchange(
        self,
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        method: str,
        path: str,
        body: bytes,
    ) -> tuple[int, bytes] | None:
        reader, writer = connection
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\n".encode()
                + self._head
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            first = await reader.readline()
            if not first:
                writer.close()
                return None
            status = int(first.split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
        except ConnectionError:
            writer.close()
            return None
        except BaseException:
            writer.close()
            raise
        self._idle.append(connection)
        return status, answer

    async def ready(self) -> None:
        deadline = time.monotonic() + 60.0
        while True:
            with contextlib.suppress(OSError, ValueError, IndexError):
                if (await self.request("GET", "/healthz"))[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not answer /healthz in time")
            await asyncio.sleep(0.2)


async def raw_signal_with_start(client: Client, event: Event) -> None:
    """What a team would write on plain Temporal: one signal-with-start per trigger event,
    same workflow type, id scheme and search attributes as Journeyman's enrollments."""
    cls = catalog.get(JOURNEY)
    await client.start_workflow(
        cls.workflow_type(),
        # The same input Journeyman's starter sends.
        EnrollmentInput(contact_id=event.contact_id, trigger=event, lean_bookkeeping=True),
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
