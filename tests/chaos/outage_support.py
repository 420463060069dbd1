"""Building blocks of the outage and API-fault tests: a TCP proxy that can cut a link, HTTP
providers that can be down, the worker with the outage journey, the API as a subprocess, and
polling with deadlines.

Everything here is real: sockets, the SMTP sink, PostgreSQL, the Temporal dev server. Nothing
waits on the wall clock except where the outage itself is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.engine import make_url
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

import worker as worker_module
from journeyman.ports import free_port
from journeyman.settings import Settings
from persistence import Database, Enrollment, EventRecord, Message
from tests.channels.provider import FakeProvider, Received, Reply
from workflows.contracts import SEND_MESSAGE, EnrollmentInput, EnrollmentResult, Event
from workflows.contracts import workflow_id_for as journey_workflow_id
from workflows.runtime import journey_search_attributes

from .outage_journeys import OUTAGE_JOURNEYS, SendAfterPause

T = TypeVar("T")

# What each channel's template renders from (the cart for SMS, an order otherwise).
CART: dict[str, Any] = {
    "cart_id": "cart-7",
    "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    "cart_url": "https://shop.example.com/cart/cart-7",
}
ORDER: dict[str, Any] = {
    "order_id": "A-1001",
    "items": [{"name": "Trail Runner 2", "quantity": 1, "price": 129.0}],
    "total": 129.0,
}
CONTEXTS = {"email": ORDER, "sms": CART, "push": ORDER}
DEVICE_TOKEN = "fcm:chaos-device"


# ----- waiting ---------------------------------------------------------------------------


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    within: float,
    what: str,
    every: float = 0.25,
) -> T:
    """Poll `probe` until `until(value)`; AssertionError naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s; last value: {value!r}")
        await asyncio.sleep(every)


# ----- a TCP proxy that can cut the link ---------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target`, in the test's event loop.

    `cut()` resets every open connection and, until `restore()`, resets each new one as soon
    as it is accepted: to a client it is a database (or server) that went away. `delay` holds
    each chunk that long in each direction: a slow link.
    """

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.down = False
        self.refused = 0  # connections reset on arrival while down
        self.reset = 0  # open connections reset by a cut
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        self._abort_all()
        await self._server.wait_closed()

    def cut(self) -> None:
        self.down = True
        self.reset += len(self._open)
        self._abort_all()

    def restore(self) -> None:
        self.down = False

    def _abort_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._open.discard(end)
                end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side is gone: so is the connection (neither protocol here half-closes).
            writer.transport.abort()


def database_address(database_url: str) -> tuple[str, int]:
    """Where the PostgreSQL of `database_url` listens: the proxy's target."""
    url = make_url(database_url)
    return url.host or "127.0.0.1", url.port or 5432


def proxied_url(database_url: str, proxy: TcpProxy) -> str:
    """`database_url` through the proxy."""
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


# ----- SMS and push providers that can be down ------------------------------------------------


class HttpProviders:
    """Twilio's Messages resource and a push API on one real HTTP server
    (tests/channels/provider.py): while `down`, every call is answered 503 without
    Retry-After; otherwise accepted. Accepted messages are counted by Idempotency-Key (the
    message id), so a duplicate shows."""

    def __init__(self) -> None:
        self.down = False
        self.refused: Counter[str] = Counter()  # channel -> 503 answers
        self.accepted: Counter[str] = Counter()  # Idempotency-Key -> acceptances
        self._lock = threading.Lock()
        self.server = FakeProvider(self.answer)

    @property
    def url(self) -> str:
        return self.server.url

    def answer(self, received: Received) -> Reply:
        channel = "sms" if received.path.endswith("/Messages.json") else "push"
        key = received.headers.get("Idempotency-Key", "")
        with self._lock:
            if self.down:
                self.refused[channel] += 1
                return Reply(503, {"message": "down for maintenance"})
            self.accepted[key] += 1
            number = sum(self.accepted.values())
        if channel == "sms":
            return Reply(201, {"sid": f"SM{number:032d}", "status": "queued"})
        return Reply(200, {"id": f"push-{number}"})


def by_message_id(messages: Iterable[EmailMessage]) -> Counter[str]:
    """How many copies of each `Message-ID` arrived."""
    return Counter(str(message["Message-ID"]).strip() for message in messages)


# ----- the worker, and enrollments in the outage journey -----------------------------------


@asynccontextmanager
async def outage_worker(
    client: Client, settings: Settings, database: Database, http: httpx.AsyncClient
) -> AsyncIterator[Worker]:
    """The worker as `journeyman worker` builds it (SMTP, SMS, push, the CRM connector the
    settings name), with the outage journey registered besides the catalog's."""
    built = worker_module.wired_worker(
        client, settings, database, http, extra_workflows=OUTAGE_JOURNEYS
    )
    async with built:
        yield built


async def start_send(
    client: Client,
    settings: Settings,
    contact_id: str,
    channel: str,
    *,
    pause_seconds: float = 0,
) -> WorkflowHandle[Any, EnrollmentResult]:
    """Enroll the contact in the outage journey: one send on `channel` after the pause."""
    trigger = Event(
        id=f"evt-{uuid.uuid4().hex[:12]}",
        contact_id=contact_id,
        name=SendAfterPause.triggers[0],
        properties={
            "channel": channel,
            "pause_seconds": pause_seconds,
            "context": CONTEXTS[channel],
        },
        occurred_at=datetime.now(UTC),
    )
    return await client.start_workflow(
        SendAfterPause.workflow_type(),
        EnrollmentInput(contact_id=contact_id, key=None, trigger=trigger),
        id=journey_workflow_id(SendAfterPause.name, contact_id),
        task_queue=settings.task_queue,
        search_attributes=journey_search_attributes(SendAfterPause, contact_id),
        result_type=EnrollmentResult,
    )


async def message_rows(database: Database, contact_ids: Iterable[str]) -> list[Message]:
    async with database.session() as session:
        query = select(Message).where(col(Message.contact_id).in_(list(contact_ids)))
        return list((await session.exec(query)).all())


async def enrollment_rows(database: Database, contact_ids: Iterable[str]) -> list[Enrollment]:
    async with database.session() as session:
        query = select(Enrollment).where(col(Enrollment.contact_id).in_(list(contact_ids)))
        return list((await session.exec(query)).all())


async def event_rows(database: Database, contact_ids: Iterable[str]) -> list[EventRecord]:
    async with database.session() as session:
        query = select(EventRecord).where(col(EventRecord.contact_id).in_(list(contact_ids)))
        return list((await session.exec(query)).all())


def mail_to(messages: Iterable[EmailMessage], contact_ids: Iterable[str]) -> list[EmailMessage]:
    """The messages addressed to `<contact id>@example.com` for one of these contacts."""
    wanted = {f"{contact_id}@example.com".lower() for contact_id in contact_ids}
    return [m for m in messages if parseaddr(str(m["To"]))[1].lower() in wanted]


async def send_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt number that ended the enrollment's (single) send, from its history."""
    scheduled: set[int] = set()
    attempt = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == SEND_MESSAGE:
                scheduled.add(event.event_id)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                attempt = max(attempt, started.attempt)
    return attempt


async def local_activity_attempts(
    handle: WorkflowHandle[Any, Any], activity_type: str
) -> list[int]:
    """The attempt that completed each local activity of that type, from the history's markers
    (a local activity's retries happen inside the worker; only its marker tells)."""
    found: list[int] = []
    async for event in handle.fetch_history_events():
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" not in details or not details["data"].payloads:
            continue
        data = json.loads(details["data"].payloads[0].data)
        if data.get("activity_type") == activity_type:
            found.append(int(data.get("attempt", 0)))
    return found


# ----- the API as a subprocess -------------------------------------------------------------


class ApiProcess:
    """`journeyman api` (uvicorn) on a fixed port, startable again after a SIGKILL."""

    def __init__(self, executable: str, env: dict[str, str], log: Path) -> None:
        self.executable = executable
        self.env = {**os.environ, **env}
        self.port = free_port()
        self.log = log
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        assert self._process is None
        self.starts += 1
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [self.executable, "api", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start(self, *, within: float = 60) -> None:
        """Spawn it and wait until /healthz says the database and Temporal answer."""
        self._spawn()

        async def health() -> int:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"the API exited; its log ends:\n{tail(self.log)}")
            try:
                async with httpx.AsyncClient(timeout=5) as probe:
                    return (await probe.get(f"{self.url}/healthz")).status_code
            except httpx.TransportError:
                return 0

        await wait_until(health, lambda code: code == 200, within=within, what="API healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no answers to the requests in flight."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


def tail(path: Path, lines: int = 30) -> str:
    with suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
