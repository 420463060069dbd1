"""What every benchmark needs: the processes (a fresh dev server, the API under uvicorn),
timed calls at a fixed concurrency, and CPU and memory readings of processes from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from journeyman.dev import temporal_binary
from journeyman.temporal import search_attribute_flags

API_KEY = "bench-key"
TASK_QUEUE = "journeyman"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Side:
    """One measured side: how many calls succeeded, in how long, and each call's latency."""

    events: int
    seconds: float
    latencies: list[float]
    # CPU seconds each process spent during the timed part ("server", "api", "bench").
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


async def timed(
    call: Callable[[int, str], Awaitable[None]],
    count: int,
    concurrency: int,
    tag: str,
    processes: dict[str, int] | None = None,
) -> Side:
    """`count` calls, at most `concurrency` in flight; each call's latency, the total time."""
    latencies: list[float] = []
    indexes = iter(range(count))

    async def lane() -> None:
        for index in indexes:
            began = time.perf_counter()
            await call(index, tag)
            latencies.append(time.perf_counter() - began)

    processes = processes or {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(lane())
    seconds = time.perf_counter() - began
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    return Side(events=len(latencies), seconds=seconds, latencies=latencies, cpu=cpu)


def combined(sides: list[Side]) -> Side:
    """Parts of one side measured separately (interleaved with other sides), as one side."""
    cpu: dict[str, float] = {}
    for side in sides:
        for name, seconds in side.cpu.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    return Side(
        events=sum(side.events for side in sides),
        seconds=sum(side.seconds for side in sides),
        latencies=[latency for side in sides for latency in side.latencies],
        cpu=cpu,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----- the processes -------------------------------------------------------------------------


def temporal_command(port: int, directory: Path, db: str) -> list[str]:
    command = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--headless", "--log-level", "error",
    ]  # fmt: skip
    if db == "file":
        # The pragmas `journeyman dev` runs with.
        command += [
            "--db-filename", str(directory / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
        ]  # fmt: skip
    for flag in search_attribute_flags():
        command += ["--search-attribute", flag]
    return command


def api_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip


def api_env(directory: Path, database_url: str, temporal_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JOURNEYMAN_DATA_DIR=str(directory),
        JOURNEYMAN_DATABASE_URL=database_url,
        JOURNEYMAN_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        JOURNEYMAN_API_KEYS=API_KEY,
        JOURNEYMAN_TASK_QUEUE=TASK_QUEUE,
    )
    return env


@contextlib.contextmanager
def running(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the block; its output in `log` (read it when something fails)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def connected(address: str) -> Client:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def api_ready(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/healthz")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not answer /healthz in time")
        await asyncio.sleep(0.2)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now, from /proc (VmRSS; 0 where there is none)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def log_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until a child process writes `text` to its log (say, a worker that polls)."""
    deadline = time.monotonic() + START_TIMEOUT
    while text not in _read(log):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: no {text!r}:\n{_read(log)}")
        await asyncio.sleep(0.1)


async def worker_polling(
    client: Client, task_queue: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until a worker process polls `task_queue` for workflow tasks (the SDK's identity
    is `pid@host`), so the first measured task is not the one that waits for its start."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    prefix = f"{process.pid}@"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        described = await client.workflow_service.describe_task_queue(request)
        if any(poller.identity.startswith(prefix) for poller in described.pollers):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: the worker does not poll:\n{_read(log)}")
        await asyncio.sleep(0.2)


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


def machine_line(load: tuple[float, float, float]) -> str:
    """The machine a table was measured on: cores and the load average taken at the start
    (these machines are shared; the load says how far to trust the figures)."""
    return (
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
