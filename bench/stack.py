"""What the runtime and wake-up benchmarks share: a migrated SQLite database with the contacts,
an SMTP sink that notes when each contact's mail arrives, each side's worker in a process of
its own, and the starts of many enrollments at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert
from sqlmodel import Session, create_engine
from temporalio.client import Client, WorkflowHandle

from bench.harness import log_line, rss_bytes, running
from bench.worker_process import READY
from journeyman.smtp_sink import SmtpSink
from persistence import migrate
from persistence.models import Contact
from workflows.contracts import EnrollmentInput, Event
from workflows.runtime import Journey, journey_search_attributes

DOMAIN = "bench.example.com"
TRIGGER = "bench_started"
SIDES = ("raw", "journeyman")


ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="Journeyman's database: a fresh PostgreSQL one (next to --admin-dsn's), or a "
        "fresh SQLite file (locks under a hundred concurrent writers on a busy machine)",
    )
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)


@contextlib.contextmanager
def bench_database(
    kind: str, directory: Path, contact_ids: Sequence[str], admin_dsn: str = ADMIN_DSN
) -> Iterator[str]:
    """A fresh migrated database holding the contacts, for the block; its URL."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'journeyman.db'}"
        _fill(url, contact_ids)
        yield url
        return
    name = f"journeyman_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        url = f"{base}/{name}"
        _fill(url, contact_ids)
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(url: str, contact_ids: Sequence[str]) -> None:
    migrate(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    rows = [
        {"contact_id": cid, "email": f"{cid}@{DOMAIN}", "attributes": {}}
        | {"created_at": now, "updated_at": now}
        for cid in contact_ids
    ]
    with Session(engine) as session:
        session.execute(insert(Contact), rows)
        session.commit()
    engine.dispose()


def worker_env(
    *, directory: Path, database_url: str, temporal_port: int, smtp_port: int, task_queue: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JOURNEYMAN_DATA_DIR=str(directory),
        JOURNEYMAN_DATABASE_URL=database_url,
        JOURNEYMAN_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        JOURNEYMAN_TASK_QUEUE=task_queue,
        JOURNEYMAN_SMTP_HOST="127.0.0.1",
        JOURNEYMAN_SMTP_PORT=str(smtp_port),
        # It is past 21:00 somewhere whenever this runs: quiet hours would hold every send
        # until morning, and the caps would refuse a third email. Both sides skip the rules'
        # outcomes alike (the consent and suppression checks still run).
        JOURNEYMAN_QUIET_HOURS="",
        JOURNEYMAN_FREQUENCY_CAPS="",
    )
    return env


@contextlib.asynccontextmanager
async def side_worker(side: str, directory: Path, env: dict[str, str]) -> AsyncIterator[int]:
    """The side's worker process, polling; yields its pid."""
    log = directory / f"worker-{side}.log"
    with running([sys.executable, "-m", "bench.worker_process", side], log, env=env) as process:
        await log_line(log, READY, process)
        yield process.pid


class Mailbox:
    """The SMTP sink, with the arrival time (time.time()) of each contact's messages.

    `on_first(contact_id)` is called on the event loop when a contact's first message lands.
    """

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.on_first = on_first
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink = SmtpSink(on_receive=self._received)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.count = 0

    @property
    def port(self) -> int:
        return self._sink.port

    def __enter__(self) -> Mailbox:
        self._loop = asyncio.get_running_loop()
        self._sink.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._sink.stop()

    def _received(self, message: EmailMessage, _path: Path | None) -> None:
        at = time.time()
        contact = str(message["To"]).split("@", 1)[0].rsplit("<", 1)[-1]
        with self._lock:
            first = contact not in self.arrivals
            self.arrivals.setdefault(contact, []).append(at)
            self.count += 1
            # The sink keeps every message; the benchmark needs only the time.
            self._sink.messages.clear()
        assert self._loop is not None
        if first and self.on_first is not None:
            self._loop.call_soon_threadsafe(self.on_first, contact)
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for count, future in list(self._waiters):
            if self.count >= count and not future.done():
                future.set_result(None)

    async def wait_for_count(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        if self.count >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        await asyncio.wait_for(future, timeout)


def workflow_type(side: str, journeyman: type[Journey], raw: str) -> str:
    return journeyman.workflow_type() if side == "journeyman" else raw


async def start_all(
    client: Client,
    *,
    side: str,
    journey: type[Journey],
    raw_type: str,
    contact_ids: Sequence[str],
    properties: dict[str, Any],
    task_queue: str,
    concurrency: int,
) -> list[WorkflowHandle[Any, Any]]:
    """Start one enrollment per contact, `concurrency` starts in flight. Journeyman's start
    carries the search attributes its API gives an enrollment; the raw one none."""
    handles: list[WorkflowHandle[Any, Any]] = []
    ids = iter(contact_ids)

    async def lane() -> None:
        for contact_id in ids:
            trigger = Event(
                id=f"evt-{contact_id}", contact_id=contact_id, name=TRIGGER, properties=properties
            )
            extra: dict[str, Any] = {}
            if side == "journeyman":
                extra["search_attributes"] = journey_search_attributes(journey, contact_id)
            handle = await client.start_workflow(
                workflow_type(side, journey, raw_type),
                # As Journeyman's starter sets it (the raw workflows ignore it).
                EnrollmentInput(contact_id=contact_id, trigger=trigger, lean_bookkeeping=True),
                id=f"{side}-{contact_id}",
                task_queue=task_queue,
                **extra,
            )
            handles.append(handle)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(contact_ids))):
            group.create_task(lane())
    return handles


@dataclass
class Sampler:
    """Peak resident memory of some processes, sampled every `every` seconds."""

    pids: dict[str, int]
    every: float = 0.5

    def __post_init__(self) -> None:
        self.peak: dict[str, int] = dict.fromkeys(self.pids, 0)

    def sample(self) -> dict[str, int]:
        now = {name: rss_bytes(pid) for name, pid in self.pids.items()}
        for name, value in now.items():
            self.peak[name] = max(self.peak[name], value)
        return now

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)
