"""The poller watchdog (journeyman/worker_watchdog.py) on a real, file-backed dev server.

- It reports a task queue its identity does not poll, after the grace period and not before;
- it stays quiet for a worker that polls, also while idle in a long poll;
- it reports a worker that stopped polling once that worker's last poll is stale;
- it counts nothing while the server is down;
- end to end: a worker process wedged the way issue 9's was (the SDK's core logging to a full
  stdout pipe nobody reads) exits with `STALLED_EXIT_CODE` and says why.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from journeyman.worker_watchdog import (
    STALLED_EXIT_CODE,
    PollerWatchdog,
    WatchedQueue,
    watched_queues,
)
from persistence import Database
from tests.chaos.conftest import (
    CountingSink,
    DevServer,
    WorkerProcess,
    add_contacts,
    messages_at_sink,
    pollers,
    start_drills,
)

pytestmark = pytest.mark.integration

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
INTERVAL = 0.2
GRACE = 1.5
PAGE = 4096
DRILLS = 20


@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class Noop:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))


def watchdog(client: Client, task_queue: str, identity: str, **overrides: object) -> PollerWatchdog:
    options: dict[str, object] = {
        "client": client,
        "namespace": "default",
        "identity": identity,
        "queues": (WatchedQueue(task_queue, WORKFLOW), WatchedQueue(task_queue, ACTIVITY)),
        "interval": INTERVAL,
        "grace": GRACE,
    }
    options.update(overrides)
    return PollerWatchdog(**options)  # type: ignore[arg-type]


async def until_polling(dog: PollerWatchdog) -> None:
    deadline = time.monotonic() + 30
    while await dog.polling() != "polling":
        assert time.monotonic() < deadline, "the worker never showed up as a poller"
        await asyncio.sleep(INTERVAL)


async def until_listed(client: Client, task_queue: str) -> None:
    deadline = time.monotonic() + 60
    while (await pollers(client, task_queue))["workflow"] == 0:
        assert time.monotonic() < deadline, "the worker never polled"
        await asyncio.sleep(INTERVAL)


async def test_reports_a_queue_its_identity_does_not_poll_after_the_grace(
    dev_server: DevServer,
) -> None:
    client = await dev_server.ready()
    task_queue = f"unpolled-{uuid.uuid4().hex[:8]}"
    dog = watchdog(client, task_queue, client.identity)
    began = time.monotonic()
    reason = await asyncio.wait_for(dog.run(), timeout=30)
    assert time.monotonic() - began >= GRACE
    assert client.identity in reason and task_queue in reason
    assert "the server answers without listing it" in reason


async def test_quiet_for_a_polling_worker_then_reports_it_once_it_stopped(
    dev_server: DevServer,
) -> None:
    client = await dev_server.ready()
    task_queue = f"polled-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[Noop],
        activities=[noop],
        # This module imports the test harness, which the sandbox would refuse.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    assert watched_queues([worker]) == (
        WatchedQueue(task_queue, WORKFLOW),
        WatchedQueue(task_queue, ACTIVITY),
    )
    dog = watchdog(client, task_queue, client.identity)
    async with worker:
        await until_polling(dog)
        await client.execute_workflow(
            Noop.run, id=f"noop-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        # Idle in its long polls (the server records a poll when it begins, and an idle one
        # lasts about a minute: hence FRESH) for several grace periods: never reported.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(dog.run(), timeout=3 * GRACE)
    # Shut down: the server lists it for minutes, but its last poll grows stale (here after
    # a short freshness, so within the test).
    stale = watchdog(client, task_queue, client.identity, fresh=timedelta(seconds=3))
    reason = await asyncio.wait_for(stale.run(), timeout=30)
    assert "stopped polling" in reason


async def test_counts_nothing_while_the_server_is_down(dev_server: DevServer) -> None:
    client = await dev_server.ready()
    dog = watchdog(client, f"unpolled-{uuid.uuid4().hex[:8]}", client.identity)
    dev_server.stop(signal.SIGKILL)
    try:
        assert await dog.polling() == "unreachable"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(dog.run(), timeout=3 * GRACE)
    finally:
        dev_server.start()
        await dev_server.ready()
    # Back up, and the queue still unpolled: reported after a grace counted from then.
    assert "stopped polling" in await asyncio.wait_for(dog.run(), timeout=30)


@pytest.mark.timeout(300)
async def test_a_worker_process_that_stopped_polling_exits_with_the_reason(
    dev_server: DevServer,
    chaos_worker: WorkerProcess,
    chaos_sink: CountingSink,
    database: Database,
) -> None:
    chaos_worker.env.update(
        JOURNEYMAN_WORKER_WATCHDOG_SECONDS="1", JOURNEYMAN_WORKER_WATCHDOG_GRACE_SECONDS="5"
    )
    # Its stdout: a one-page pipe nobody reads, full but for room for READY, as issue 9's was
    # after a while. The next thing the SDK's core logs there (a warning) blocks its thread.
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PAGE)
        os.write(write_end, b"." * (PAGE - 16) + b"\n")
        chaos_worker.start(stdout=write_end)
    finally:
        os.close(write_end)
    process = chaos_worker.process
    assert process is not None
    client = await dev_server.ready()
    await until_listed(client, chaos_worker.task_queue)
    # A server outage mid-run: the core warns about each completion it retries, and wedges.
    contact_ids = await add_contacts(database, DRILLS, uuid.uuid4().hex[:6])
    await start_drills(client, contact_ids, chaos_worker.task_queue)
    await messages_at_sink(chaos_sink, DRILLS // 2, within=60)
    dev_server.stop(signal.SIGKILL)
    await asyncio.sleep(3)
    dev_server.start()
    client = await dev_server.ready()
    try:
        code = await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=180)
    finally:
        os.close(read_end)
    log = chaos_worker.log.read_text()
    assert code == STALLED_EXIT_CODE, log[-2000:]
    # Stuck with it the watchdog's own calls (as here, so far) or not, it has seen no poll.
    assert "has not been seen polling" in log
    assert "exiting so that the supervisor restarts it" in log
