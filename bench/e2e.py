"""Scenario 4, end to end: an event accepted by the API -> its email received at an SMTP sink.

One fresh Temporal dev server, one fresh migrated database (PostgreSQL by default: the API and
the worker both write to it, which SQLite serialises), the real API under uvicorn,
the real worker (`journeyman worker`) and an SMTP sink in this process that notes when each
contact's first email lands. First the maximum ingest rate (closed loop, worker running), then
`signed_up` events at half of it, open loop and paced, each for a fresh contact with an email
address, so `welcome_series` sends its welcome at once; latency is from the moment the API
answered 202 to the email's arrival. The raw baseline, in the same run at the same rate: a
plain Temporal workflow + aiosmtplib activity (`bench/e2e_raw.py`), signal-with-started from
this process, latency from the moment the start call returned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import httpx
import psycopg
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from bench import e2e_raw
from bench.harness import (
    API_KEY,
    TASK_QUEUE,
    api_command,
    api_env,
    api_ready,
    connected,
    cpu_seconds,
    machine_line,
    running,
    temporal_command,
    timed,
    worker_polling,
)
from journeyman.ports import free_port
from journeyman.smtp_sink import SmtpSink
from persistence import migrate

TRIGGER = "signed_up"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DOMAIN = "bench.example.com"
RAW_QUEUE = "bench-raw-e2e"
# Contacts written at once while preparing (PUT /v1/contacts).
PREPARE_CONCURRENCY = 16
# Attempts of one API call answered 503 (busy) before the bench gives up on it.
RETRIES = 10


@dataclass
class Paced:
    """One side's open-loop run: how many events were offered, accepted and mailed, and when."""

    label: str
    offered_rate: float
    expected: int
    accepted: int = 0
    received: int = 0
    seconds: float = 0.0  # from the first event's due time to the last acceptance
    mail_seconds: float = 0.0  # from the first event's due time to the last email received
    latencies: list[float] = field(default_factory=list)  # accepted -> email received
    accept_latencies: list[float] = field(default_factory=list)  # request -> accepted
    retries: int = 0  # calls answered 503 and repeated
    # CPU seconds of each process ("server", "api", "worker", ...) over the side's run.
    cpu: dict[str, float] = field(default_factory=dict)

    def percentile(self, q: int, values: list[float] | None = None) -> float:
        data = self.latencies if values is None else values
        if len(data) < 2:
            return data[0] if data else float("nan")
        return statistics.quantiles(data, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class E2EResult:
    offered_rate: float
    journeyman: Paced
    raw: Paced | None
    # The closed-loop maximum the rate was derived from (None when --rate was given).
    max_rate: float | None = None
    calibration_events: int = 0
    concurrency: int = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=900, help="paced events per side")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s to offer; default: half the maximum ingest rate measured first",
    )
    parser.add_argument(
        "--calibrate", type=int, default=300, help="events of the maximum-rate measurement"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="calls in flight measuring the maximum"
    )
    parser.add_argument("--warmup", type=int, default=10, help="uncounted events per side")
    parser.add_argument(
        "--db", choices=("memory", "file"), default="memory", help="the Temporal server's store"
    )
    parser.add_argument(
        "--database",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="Journeyman's database: a fresh PostgreSQL one next to --admin-dsn's, or a fresh "
        "SQLite file (its one writer at a time makes API and worker wait on each other)",
    )
    parser.add_argument("--admin-dsn", default=ADMIN_DSN, help="where to create the database")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw Temporal baseline")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the last emails after the last event",
    )


def run(args: argparse.Namespace) -> None:
    # `kill <pid>` must stop the children and drop the database too: SIGTERM becomes
    # SystemExit, so every `finally` runs.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()
    try:
        result = _measure(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(machine_line(load))
    print(
        f"temporal dev server ({args.db}), {args.database}, API under uvicorn, "
        "`journeyman worker`, SMTP sink in the bench process"
    )
    print(format_table(result))


def _measure(args: argparse.Namespace) -> E2EResult:
    return asyncio.run(
        measure(
            events=args.events,
            rate=args.rate,
            calibrate=args.calibrate,
            concurrency=args.concurrency,
            warmup=args.warmup,
            db=args.db,
            database=args.database,
            admin_dsn=args.admin_dsn,
            raw=not args.no_raw,
            drain_timeout=args.drain_timeout,
        )
    )


def format_table(result: E2EResult) -> str:
    lines = []
    if result.max_rate is not None:
        lines.append(
            f"max ingest rate (closed loop, {result.calibration_events} events, concurrency "
            f"{result.concurrency}, worker running): {result.max_rate:.1f} events/s"
        )
    lines.append(
        f"offered rate: {result.offered_rate:.1f} events/s, open loop, "
        f"{result.journeyman.expected} events per side"
    )
    lines.append(
        f"{'accepted -> email received':30} {'offered/s':>9} {'expected':>8} {'accepted':>8} "
        f"{'received':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'accept p50 ms':>13}"
    )
    sides = [side for side in (result.raw, result.journeyman) if side is not None]
    for side in sides:
        lines.append(_row(side))
    for side in sides:
        missing = side.accepted - side.received
        if missing:
            lines.append(
                f"  {side.label}: {missing} emails not received within the drain timeout "
                "(the percentiles are of those received)"
            )
    lines.append(
        "delivered, first event to last email (below the offered rate: a backlog grew): "
        + ", ".join(f"{side.label} {_delivered_rate(side):.1f} emails/s" for side in sides)
    )
    names = list(result.journeyman.cpu)
    if names:
        lines.append(f"CPU ms per event ({' / '.join(names)}), first event to last email:")
        for side in sides:
            per_event = [side.cpu.get(name, 0.0) * 1000 / max(side.expected, 1) for name in names]
            lines.append(f"  {side.label:28} " + " ".join(f"{value:8.2f}" for value in per_event))
    for side in sides:
        if side.retries:
            lines.append(
                f"  {side.label}: {side.retries} calls repeated (503 busy or connection dropped)"
            )
    if result.raw is not None and result.raw.latencies and result.journeyman.latencies:
        jm, raw = result.journeyman, result.raw
        lines.append(
            f"{'ratio Journeyman / raw':30} p50 {jm.percentile(50) / raw.percentile(50):.2f}"
            f"   p99 {jm.percentile(99) / raw.percentile(99):.2f}"
        )
    return "\n".join(lines)


def _delivered_rate(side: Paced) -> float:
    return side.received / side.mail_seconds if side.mail_seconds > 0 else 0.0


def _row(side: Paced) -> str:
    worst = max(side.latencies) if side.latencies else float("nan")
    return (
        f"{side.label:30} {side.offered_rate:9.1f} {side.expected:8d} {side.accepted:8d} "
        f"{side.received:8d} "
        f"{side.percentile(50) * 1000:8.1f} {side.percentile(99) * 1000:8.1f} "
        f"{worst * 1000:8.1f} {side.percentile(50, side.accept_latencies) * 1000:13.1f}"
    )


# ----- the mail ----------------------------------------------------------------------------


class Arrivals:
    """The SMTP sink, noting (time.perf_counter) when each address's first email lands."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self._lock = threading.Lock()
        self.sink = SmtpSink(on_receive=self._received)

    def _received(self, message: EmailMessage, _saved: Path | None) -> None:
        # On the sink's thread, as soon as the message is in; perf_counter is process-wide.
        at = time.perf_counter()
        address = parseaddr(str(message["To"]))[1].lower()
        with self._lock:
            self.first.setdefault(address, at)
        # The benchmark needs only the time; thousands of parsed messages are memory.
        self.sink.clear()

    def arrived(self, address: str) -> float | None:
        with self._lock:
            return self.first.get(address)

    async def wait_for(self, addresses: Iterable[str], timeout: float) -> int:  # noqa: ASYNC109
        """Wait until every address has mail or `timeout` passes; how many have."""
        wanted = list(addresses)
        deadline = time.perf_counter() + timeout
        while True:
            with self._lock:
                count = sum(1 for address in wanted if address in self.first)
            if count == len(wanted) or time.perf_counter() > deadline:
                return count
            await asyncio.sleep(0.05)


# When this run began (reset by `measure`), for the progress lines.
_began = [time.perf_counter()]


def say(text: str) -> None:
    """Progress on stderr, so a long run shows where it is and the table stays on stdout."""
    print(f"[e2e {time.perf_counter() - _began[0]:6.1f}s] {text}", file=sys.stderr, flush=True)


def address_of(contact_id: str) -> str:
    return f"{contact_id}@{DOMAIN}"


# ----- the run -----------------------------------------------------------------------------


async def measure(
    *,
    events: int,
    rate: float | None,
    calibrate: int,
    concurrency: int,
    warmup: int,
    db: str,
    raw: bool,
    drain_timeout: float,
    database: str = "postgres",
    admin_dsn: str = ADMIN_DSN,
) -> E2EResult:
    _began[0] = time.perf_counter()
    run_id = uuid.uuid4().hex[:6]
    with (
        tempfile.TemporaryDirectory(prefix="journeyman-bench-e2e-") as tmp,
        fresh_database(database, Path(tmp), admin_dsn) as database_url,
    ):
        directory = Path(tmp)
        arrivals = Arrivals()
        arrivals.sink.start()
        try:
            temporal_port = free_port()
            with contextlib.ExitStack() as stack:
                server = stack.enter_context(
                    running(
                        temporal_command(temporal_port, directory, db),
                        directory / "temporal.log",
                    )
                )
                client = await connected(f"127.0.0.1:{temporal_port}")
                env = _stack_env(directory, database_url, temporal_port, arrivals.sink.port)
                api_port = free_port()
                api = stack.enter_context(
                    running(api_command(api_port), directory / "api.log", env=env)
                )
                worker_log = directory / "worker.log"
                worker = stack.enter_context(
                    running([sys.executable, "-m", "journeyman.cli", "worker"], worker_log, env)
                )
                raw_log = directory / "raw-worker.log"
                raw_worker = None
                if raw:
                    raw_worker = stack.enter_context(
                        running(
                            [sys.executable, "-m", "bench.e2e_raw"],
                            raw_log,
                            {**env, "JOURNEYMAN_TASK_QUEUE": RAW_QUEUE},
                        )
                    )
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{api_port}",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
                    timeout=60.0,
                ) as http:
                    await api_ready(http)
                    await worker_polling(client, TASK_QUEUE, worker, worker_log)
                    if raw_worker is not None:
                        await worker_polling(client, RAW_QUEUE, raw_worker, raw_log)
                    say("server, API and workers ready")
                    # Stop them all at once at the end, not one after the other's exit.
                    children = [worker, *([raw_worker] if raw_worker else [])]
                    stack.callback(_terminate, children)
                    processes = {"server": server.pid, "api": api.pid, "worker": worker.pid}
                    if raw_worker is not None:
                        processes["raw worker"] = raw_worker.pid
                    processes["bench"] = os.getpid()
                    bench = _Bench(client, http, arrivals, run_id, drain_timeout, processes)
                    result = await bench.measure(
                        events=events,
                        rate=rate,
                        calibrate=calibrate,
                        concurrency=concurrency,
                        warmup=warmup,
                        raw=raw,
                    )
                say("stopping the processes")
            say("processes stopped")
        finally:
            arrivals.sink.stop()
    say("database dropped")
    return result


@contextlib.contextmanager
def fresh_database(kind: str, directory: Path, admin_dsn: str) -> Iterator[str]:
    """A fresh migrated database for the block (dropped after it); its URL."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'journeyman.db'}"
        migrate(url)
        yield url
        return
    name = f"journeyman_bench_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{name}"
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _terminate(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()


def _stack_env(
    directory: Path, database_url: str, temporal_port: int, smtp_port: int
) -> dict[str, str]:
    env = api_env(directory, database_url, temporal_port)
    env.update(
        JOURNEYMAN_SMTP_HOST="127.0.0.1",
        JOURNEYMAN_SMTP_PORT=str(smtp_port),
        # Whatever the hour of the run, the welcome goes out now: quiet hours would hold it
        # until 08:00 in the contact's zone. Consent and caps stay as configured (a welcome
        # is each contact's first email, so no cap applies).
        JOURNEYMAN_QUIET_HOURS="",
        # The journeys' daily schedules would start their own work during the measurement.
        JOURNEYMAN_SCHEDULES_ENABLED="false",
    )
    return env


class _Bench:
    def __init__(
        self,
        client: Client,
        http: httpx.AsyncClient,
        arrivals: Arrivals,
        run_id: str,
        drain_timeout: float,
        processes: dict[str, int],
    ) -> None:
        self.client = client
        self.http = http
        self.arrivals = arrivals
        self.run_id = run_id
        self.drain_timeout = drain_timeout
        self.processes = processes
        self.retries = 0

    def contacts(self, tag: str, count: int) -> list[str]:
        return [f"e2e-{self.run_id}-{tag}-{index}" for index in range(count)]

    async def measure(
        self,
        *,
        events: int,
        rate: float | None,
        calibrate: int,
        concurrency: int,
        warmup: int,
        raw: bool,
    ) -> E2EResult:
        groups = {"jw": warmup, "c": calibrate if rate is None else 0, "j": events}
        await self.create_contacts([c for tag, n in groups.items() for c in self.contacts(tag, n)])
        say(f"created {sum(groups.values())} contacts; warming up")
        # Warm up both paths end to end (first imports, sandboxes, connections); not counted.
        await self.closed_loop(self.post_event, self.contacts("jw", warmup), concurrency)
        if raw:
            await self.closed_loop(self.raw_start, self.contacts("rw", warmup), concurrency)
        max_rate = None
        if rate is None:
            max_rate = await self.closed_loop(
                self.post_event, self.contacts("c", calibrate), concurrency
            )
            rate = max_rate / 2
            say(f"max ingest rate {max_rate:.1f} events/s")
        raw_side = None
        if raw:
            raw_side = await self.paced(
                "raw Temporal + aiosmtplib", self.raw_start, self.contacts("r", events), rate
            )
        jm_side = await self.paced(
            "Journeyman POST /v1/events", self.post_event, self.contacts("j", events), rate
        )
        return E2EResult(
            offered_rate=rate,
            journeyman=jm_side,
            raw=raw_side,
            max_rate=max_rate,
            calibration_events=calibrate if max_rate is not None else 0,
            concurrency=concurrency,
        )

    # ----- the two ways in ---------------------------------------------------------------

    async def create_contacts(self, contact_ids: list[str]) -> None:
        async def put(index: int, _tag: str) -> None:
            contact_id = contact_ids[index]
            await self.call(
                "PUT",
                f"/v1/contacts/{contact_id}",
                {"email": address_of(contact_id), "subscriptions": {"email": True}},
            )

        await timed(put, len(contact_ids), PREPARE_CONCURRENCY, "contacts")

    async def post_event(self, contact_id: str) -> None:
        await self.call(
            "POST",
            "/v1/events",
            {"id": f"evt-{contact_id}", "contact_id": contact_id, "name": TRIGGER},
        )

    async def call(self, method: str, url: str, body: dict[str, object]) -> None:
        """One API call, repeated as a client should after a 503 (the API's database busy
        past its timeout, say SQLite under heavy load) or a dropped connection (uvicorn
        closes idle keep-alive connections after 5 s; a request can race that). Both calls
        are idempotent (the event id is its key); each repeat is counted and reported."""
        for attempt in range(1, RETRIES + 1):
            try:
                response = await self.http.request(method, url, json=body)
            except httpx.TransportError:
                if attempt == RETRIES:
                    raise
                self.retries += 1
                await asyncio.sleep(0.1)
                continue
            if response.status_code != 503 or attempt == RETRIES:
                response.raise_for_status()
                return
            self.retries += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async def raw_start(self, contact_id: str) -> None:
        event = e2e_raw.RawEvent(
            id=f"evt-{contact_id}", contact_id=contact_id, email=address_of(contact_id)
        )
        await self.client.start_workflow(
            e2e_raw.WORKFLOW,
            e2e_raw.RawInput(contact_id=contact_id),
            id=f"raw-welcome:{contact_id}",
            task_queue=RAW_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=e2e_raw.SIGNAL,
            start_signal_args=[event],
        )

    # ----- the two ways of sending -------------------------------------------------------

    async def closed_loop(
        self, send: Callable[[str], Awaitable[None]], contact_ids: list[str], concurrency: int
    ) -> float:
        """Send as fast as `concurrency` calls in flight allow; the rate; then wait for the
        emails, so the next phase starts with an idle stack."""
        if not contact_ids:
            return 0.0

        async def call(index: int, _tag: str) -> None:
            await send(contact_ids[index])

        side = await timed(call, len(contact_ids), concurrency, "closed")
        await self.arrivals.wait_for(map(address_of, contact_ids), self.drain_timeout)
        return side.rate

    async def paced(
        self,
        label: str,
        send: Callable[[str], Awaitable[None]],
        contact_ids: list[str],
        rate: float,
    ) -> Paced:
        """Open loop: event i is sent at start + i / rate whatever the earlier ones are doing."""
        say(f"{label}: {len(contact_ids)} events at {rate:.1f}/s")
        result = Paced(label=label, offered_rate=rate, expected=len(contact_ids))
        retries_before = self.retries
        cpu_before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        accepted: dict[str, float] = {}
        began = time.perf_counter() + 0.1

        async def one(index: int, contact_id: str) -> None:
            await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            sent = time.perf_counter()
            try:
                await send(contact_id)
            except (httpx.HTTPError, RPCError) as err:
                print(f"  {label}: {contact_id} not accepted: {err}", file=sys.stderr)
                return
            accepted[contact_id] = time.perf_counter()
            result.accept_latencies.append(accepted[contact_id] - sent)

        async with asyncio.TaskGroup() as group:
            for index, contact_id in enumerate(contact_ids):
                group.create_task(one(index, contact_id))
        result.seconds = time.perf_counter() - began
        result.accepted = len(accepted)
        result.retries = self.retries - retries_before
        await self.arrivals.wait_for(map(address_of, accepted), self.drain_timeout)
        # From the first event to the last email (or the drain timeout): all the work it caused.
        result.cpu = {
            name: cpu_seconds(pid) - cpu_before[name] for name, pid in self.processes.items()
        }
        last_arrival = began
        for contact_id, at in accepted.items():
            arrived = self.arrivals.arrived(address_of(contact_id))
            if arrived is not None:
                result.latencies.append(arrived - at)
                last_arrival = max(last_arrival, arrived)
        result.received = len(result.latencies)
        result.mail_seconds = last_arrival - began
        return result
