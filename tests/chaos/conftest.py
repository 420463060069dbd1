"""Shared chaos fixtures: the parts a fault test breaks on purpose, and the counting after.

- `CountingSink` (fixture `chaos_sink`): a real SMTP server (`journeyman.smtp_sink`) whose
  deliveries are counted by `Message-ID`, so a message delivered twice is seen as such.
- `DevServer` (fixture `dev_server`): the Temporal dev server, file-backed (`--db-filename`),
  on one port for its whole life, so it can be stopped (SIGTERM or SIGKILL) and started
  again on the same port and file.
- `WorkerProcess` (fixture `chaos_worker`): the real worker (`tests/chaos/worker_main.py`,
  built by `worker.wired_worker` plus the `ChaosDrill` journey) as a child process that a
  test can SIGKILL and start again, or have started again whenever it exits (`supervise`).
  Its stdout is read for its whole life (see `WorkerProcess.ready` for why that matters).
- `add_contacts`, `start_drills`, `wait_until_ended`, `drill_results`, `check_deliveries`:
  make contacts, start enrollments as `EnrollmentService` would, wait (by polling the
  database, with a deadline, never on timing), and count what the sink got.

Every process is a child in its own session, stopped at the end of its test; ports are free
ports chosen at start. The chaos tests need PostgreSQL (row locks, and a database the worker
process shares): with the SQLite fallback they skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func
from sqlmodel import col, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from activities.email import MESSAGE_ID_HEADER
from bench.harness import temporal_command
from journeyman.ports import free_port
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, Enrollment, Message
from tests.chaos.journey import SEND_STEPS, ChaosDrill
from tests.chaos.worker_main import READY
from workflows.contracts import EnrollmentInput, EnrollmentResult, workflow_id_for
from workflows.runtime import journey_search_attributes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHAOS_TEMPLATES = Path(__file__).resolve().parent / "templates"
EMAIL_FROM = "Chaos Drill <drill@chaos.example.com>"
SERVER_START_TIMEOUT = 60.0
WORKER_READY_TIMEOUT = 60.0


# ----- the SMTP sink, counting by Message-ID -------------------------------------------------


class CountingSink:
    """A real SMTP sink; `deliveries()` counts every accepted message by its Message-ID."""

    def __init__(self) -> None:
        self.sink = SmtpSink("127.0.0.1", 0)

    @property
    def host(self) -> str:
        return self.sink.host

    @property
    def port(self) -> int:
        return self.sink.port

    def start(self) -> None:
        self.sink.start()

    def stop(self) -> None:
        self.sink.stop()

    def deliveries(self) -> Counter[str]:
        """Message-ID -> how many times the sink accepted a message carrying it."""
        return Counter(str(message["Message-ID"]) for message in list(self.sink.messages))

    def message_ids_by_step(self) -> dict[str, set[str]]:
        """Our message id (enrollment and step, `X-Journeyman-Message-Id`) -> Message-IDs."""
        found: dict[str, set[str]] = defaultdict(set)
        for message in list(self.sink.messages):
            found[str(message[MESSAGE_ID_HEADER])].add(str(message["Message-ID"]))
        return dict(found)


@pytest.fixture
def chaos_sink() -> Iterator[CountingSink]:
    sink = CountingSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# ----- the Temporal dev server, stoppable ----------------------------------------------------


class DevServer:
    """A file-backed Temporal dev server on a port of its own, for its whole life.

    `stop(signal.SIGKILL)` (or SIGTERM) and `start()` again resume the same state from the
    same SQLite file on the same address, as an operator's restart would.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = directory / "temporal.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                temporal_command(self.port, self.directory, "file"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    async def ready(self) -> Client:
        """A client once the server answers (the namespace exists once it does)."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return client
            except (RuntimeError, RPCError):
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"the dev server exited; see {self.log}") from None
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self, signum: int = signal.SIGTERM, *, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    """A running file-backed dev server (its files in the test's tmp_path); stopped after."""
    server = DevServer(tmp_path)
    server.start()
    try:
        await server.ready()
        yield server
    finally:
        server.stop(signal.SIGKILL)


@pytest.fixture
def chaos_database_url(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("the chaos tests need PostgreSQL (row locks, shared with the worker)")
    return database_url


# ----- the worker, killable ------------------------------------------------------------------


def worker_environment(
    *,
    database_url: str,
    temporal_address: str,
    task_queue: str,
    sink: CountingSink,
    data_dir: Path,
) -> dict[str, str]:
    """The `JOURNEYMAN_*` environment of a chaos worker: production wiring, test endpoints.

    No quiet hours and no frequency caps (three emails in seconds would hit them), the
    drill's own templates, and the SMTP sink.
    """
    env = dict(os.environ)
    env.update(
        JOURNEYMAN_DATA_DIR=str(data_dir),
        JOURNEYMAN_DATABASE_URL=database_url,
        JOURNEYMAN_TEMPORAL_ADDRESS=temporal_address,
        JOURNEYMAN_TASK_QUEUE=task_queue,
        JOURNEYMAN_SMTP_HOST=sink.host,
        JOURNEYMAN_SMTP_PORT=str(sink.port),
        JOURNEYMAN_SMTP_TIMEOUT_SECONDS="10",
        JOURNEYMAN_EMAIL_FROM=EMAIL_FROM,
        JOURNEYMAN_TEMPLATES_DIR=str(CHAOS_TEMPLATES),
        JOURNEYMAN_QUIET_HOURS="",
        JOURNEYMAN_FREQUENCY_CAPS="",
        JOURNEYMAN_SEND_TASK_QUEUE="",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


class WorkerProcess:
    """`python -m tests.chaos.worker_main` as a child process: start, wait ready, SIGKILL;
    with `supervise()`, started again whenever it exits by itself, as compose would."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exits: list[int] = []  # exit codes of the runs that ended by themselves
        self.draining = False  # a thread copies the current process's stdout to the log

    @property
    def task_queue(self) -> str:
        return self.env["JOURNEYMAN_TASK_QUEUE"]

    def start(self, stdout: int = subprocess.PIPE) -> None:
        """Start it; `stdout` another descriptor than the pipe `ready()` reads only to wedge
        it (see test_worker_watchdog.py)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.draining = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker_main"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=stdout,
            stderr=self.log.open("ab"),
            start_new_session=True,
        )
        self.starts += 1

    async def ready(self) -> None:
        """Until the worker printed READY (it is polling); fails if it died first."""
        process = self.process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        line = await asyncio.wait_for(
            asyncio.to_thread(stdout.readline), timeout=WORKER_READY_TIMEOUT
        )
        if line.decode().strip() != READY:
            raise RuntimeError(f"the chaos worker did not start ({line!r}); see {self.log}")
        # The SDK's core writes its log (a warning per retried call while the server is down)
        # to stdout. Unread, the pipe fills after ~64 KiB and the core thread writing to it
        # blocks, and with it the worker's polling: the "0 pollers after a server restart" of
        # issue 9 was this. So the rest of stdout is copied to the log for the process's life.
        threading.Thread(target=_copy_lines, args=(stdout, self.log), daemon=True).start()
        self.draining = True

    async def supervise(self) -> None:
        """Start the worker again each time it exits by itself (the watchdog exits a worker
        that stopped polling), until cancelled; as `restart: unless-stopped` would."""
        while True:
            process = self.process
            assert process is not None
            code = await asyncio.to_thread(process.wait)
            if process is not self.process:
                continue  # a kill() and start() happened meanwhile
            self.exits.append(code)
            self.start()
            await self.ready()

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities and workflow tasks are lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None and not self.draining:
            self.process.stdout.close()  # else the copying thread closes it at its end


def _copy_lines(stream: IO[bytes], log: Path) -> None:
    with stream, log.open("ab") as out:
        for line in stream:
            out.write(line)
            out.flush()


@pytest.fixture
def chaos_worker(
    chaos_database_url: str, dev_server: DevServer, chaos_sink: CountingSink, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A chaos worker (not started yet) on a task queue of its own; stopped after the test."""
    env = worker_environment(
        database_url=chaos_database_url,
        temporal_address=dev_server.address,
        task_queue=f"chaos-{uuid.uuid4().hex[:8]}",
        sink=chaos_sink,
        data_dir=tmp_path,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        yield worker
    finally:
        worker.stop()


# ----- the drill: contacts, enrollments, waiting, counting -----------------------------------


async def add_contacts(database: Database, count: int, tag: str) -> list[str]:
    """`count` contacts with an email address and email consent; their ids."""
    ids = [f"chaos-{tag}-{number:05d}" for number in range(count)]
    async with database.session() as session:
        for contact_id in ids:
            session.add(
                Contact(
                    contact_id=contact_id,
                    email=f"{contact_id}@chaos.example.com",
                    email_consent=True,
                    timezone="UTC",
                )
            )
        await session.commit()
    return ids


async def start_drills(
    client: Client, contact_ids: Iterable[str], task_queue: str, *, concurrency: int = 50
) -> list[WorkflowHandle[ChaosDrill, EnrollmentResult]]:
    """Start one `ChaosDrill` enrollment per contact with `EnrollmentService`'s options for a
    journey with `reentry = "never"` (the API does not know the drill, so not through it)."""
    gate = asyncio.Semaphore(concurrency)

    async def start(contact_id: str) -> WorkflowHandle[ChaosDrill, EnrollmentResult]:
        async with gate:
            return await client.start_workflow(
                ChaosDrill.workflow_type(),
                EnrollmentInput(contact_id=contact_id),
                id=workflow_id_for(ChaosDrill.name, contact_id),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=journey_search_attributes(ChaosDrill, contact_id),
                result_type=EnrollmentResult,
            )

    return list(await asyncio.gather(*(start(contact_id) for contact_id in contact_ids)))


async def ended_count(database: Database, contact_ids: list[str]) -> int:
    """How many of these contacts' drill enrollments have ended (per the lifecycle log)."""
    async with database.session() as session:
        statement = select(func.count()).where(
            col(Enrollment.journey) == ChaosDrill.name,
            col(Enrollment.contact_id).in_(contact_ids),
            col(Enrollment.ended_at).is_not(None),
        )
        return int((await session.exec(statement)).one())


async def wait_until_ended(
    database: Database, contact_ids: list[str], *, stall: float = 90.0, poll: float = 1.0
) -> int:
    """Poll until every drill enrollment ended; the count ended.

    Gives up only when no enrollment ended for `stall` seconds (a lost enrollment never
    ends, so the run stalls), never on a total time: a slow machine is not a failure.
    """
    ended = 0
    last_progress = time.monotonic()
    while True:
        now_ended = await ended_count(database, contact_ids)
        if now_ended > ended:
            ended, last_progress = now_ended, time.monotonic()
        if ended >= len(contact_ids) or time.monotonic() - last_progress > stall:
            return ended
        await asyncio.sleep(poll)


async def drill_results(
    handles: list[WorkflowHandle[ChaosDrill, EnrollmentResult]], *, concurrency: int = 50
) -> list[EnrollmentResult]:
    """Each enrollment's result from Temporal (each must have completed)."""
    gate = asyncio.Semaphore(concurrency)

    async def result(handle: WorkflowHandle[ChaosDrill, EnrollmentResult]) -> EnrollmentResult:
        async with gate:
            return await asyncio.wait_for(handle.result(), timeout=60)

    return list(await asyncio.gather(*(result(handle) for handle in handles)))


@dataclass
class DeliveryReport:
    """What the sink and the message log say about a drill, in numbers."""

    enrollments: int
    expected: int  # messages: enrollments x sends
    delivered: int  # messages the sink accepted, repeats included
    distinct: int  # distinct Message-IDs at the sink
    missing: list[str] = field(default_factory=list)  # expected steps with no message
    unexpected: list[str] = field(default_factory=list)  # messages for no expected step
    split: dict[str, set[str]] = field(default_factory=dict)  # a step with 2+ Message-IDs
    repeated: dict[str, int] = field(default_factory=dict)  # Message-ID -> deliveries, if 2+
    rows: Counter[str] = field(default_factory=Counter)  # message log status -> rows
    taken_over: int = 0  # rows with 2+ claims: an attempt died mid-send and another sent it
    unexplained_repeats: list[str] = field(default_factory=list)  # repeat with one claim only

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first of each Message-ID."""
        return self.delivered - self.distinct

    def lines(self) -> list[str]:
        return [
            f"enrollments: {self.enrollments}",
            f"messages expected: {self.expected}, delivered: {self.delivered}, "
            f"distinct Message-IDs: {self.distinct}",
            f"missing: {len(self.missing)}, unexpected: {len(self.unexpected)}, "
            f"steps with two Message-IDs: {len(self.split)}",
            f"duplicates (same Message-ID again, the kill-after-accept window): "
            f"{self.duplicates} over {len(self.repeated)} Message-ID(s)",
            f"message log: {dict(self.rows)}; sent again after a dead attempt: {self.taken_over}",
        ]


async def check_deliveries(
    database: Database, sink: CountingSink, contact_ids: list[str]
) -> DeliveryReport:
    """Compare the sink with what the drill must have sent: one message per send step."""
    workflow_ids = [workflow_id_for(ChaosDrill.name, contact_id) for contact_id in contact_ids]
    async with database.session() as session:
        rows = (
            await session.exec(select(Message).where(col(Message.workflow_id).in_(workflow_ids)))
        ).all()
    expected = {row.message_id for row in rows}
    by_step = sink.message_ids_by_step()
    deliveries = sink.deliveries()
    mine = {mid for step, mids in by_step.items() if step in expected for mid in mids}
    attempts = {row.provider_message_id: row.attempts for row in rows}
    repeated = {mid: n for mid, n in deliveries.items() if n > 1}
    steps_per_run = len(SEND_STEPS)
    return DeliveryReport(
        enrollments=len(contact_ids),
        expected=len(contact_ids) * steps_per_run,
        delivered=sum(deliveries.values()),
        distinct=len(deliveries),
        missing=sorted(expected - by_step.keys()),
        unexpected=sorted(by_step.keys() - expected),
        split={step: mids for step, mids in by_step.items() if len(mids) > 1},
        repeated=repeated,
        rows=Counter(row.status for row in rows),
        taken_over=sum(1 for row in rows if row.attempts > 1),
        unexplained_repeats=sorted(
            mid for mid, n in repeated.items() if mid not in mine or attempts.get(mid, 1) < n
        ),
    )


def assert_exactly_once(report: DeliveryReport) -> None:
    """Nothing lost, nothing sent twice, as far as a receiver de-duplicating by Message-ID
    sees it; a repeat of one Message-ID is allowed only where a claim was taken over from a
    dead attempt (at most one repeat per extra claim)."""
    assert report.rows == Counter({"sent": report.expected}), report.lines()
    assert report.missing == [] and report.unexpected == [], report.lines()
    assert report.split == {}, report.lines()
    assert report.distinct == report.expected, report.lines()
    assert report.unexplained_repeats == [], report.lines()


def drill_outcomes(results: list[EnrollmentResult]) -> Counter[str]:
    """Enrollments by status and send outcomes, e.g. `completed first=sent second=sent ...`;
    a clean drill has one key for all of them."""
    return Counter(
        " ".join(
            [result.status]
            + [f"{step.name}={step.outcome}" for step in result.steps if step.kind == "send"]
        )
        for result in results
    )


CLEAN_DRILL = " ".join(["completed"] + [f"{step}=sent" for step in SEND_STEPS])


def replies_received(results: list[EnrollmentResult]) -> int:
    return sum(
        any(step.kind == "wait_for" and step.outcome.startswith("received") for step in r.steps)
        for r in results
    )


async def messages_at_sink(sink: CountingSink, count: int, *, within: float) -> int:
    """Poll until the sink accepted `count` messages or `within` seconds passed; how many."""
    with contextlib.suppress(TimeoutError):
        await sink.sink.wait_for(count, within=within)
    return len(sink.sink.messages)


async def pollers(client: Client, task_queue: str) -> dict[str, int]:
    """How many pollers the server sees on the task queue, by kind (for failure messages:
    a live worker with none has stopped polling)."""
    kinds = {
        "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    }
    found: dict[str, int] = {}
    for name, kind in kinds.items():
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind
            )
        )
        found[name] = len(answer.pollers)
    return found
