"""`journeyman dev` starts its worker again when it exits, as an orchestrator would.

The worker's poller watchdog exits a worker that stopped polling (issue 9); that only helps
if something starts it again. Here the worker child is SIGKILLed under `journeyman dev`: the
stack stays up, says so, a new worker process polls the task queue, and Ctrl-C still stops
everything cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from journeyman.ports import free_ports
from tests.cli.test_dev import (
    assert_stops_clean,
    descendants,
    running_dev,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TASK_QUEUE = "journeyman"  # the default JOURNEYMAN_TASK_QUEUE, which `journeyman dev` keeps


def worker_pids(dev_pid: int) -> set[int]:
    found = set()
    for pid in descendants(dev_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"journeyman.cli" in command and b"worker" in command:
            found.add(pid)
    return found


async def polling_pids(client: Client) -> set[int]:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {int(p.identity.split("@")[0]) for p in described.pollers if "@" in p.identity}


async def test_a_worker_that_exits_is_started_again(tmp_path: Path) -> None:
    api, temporal, ui, smtp = free_ports(4)
    ports = {"api": api, "temporal": temporal, "ui": ui, "smtp": smtp}
    with running_dev(tmp_path / "data", ports) as dev:
        (first,) = worker_pids(dev.process.pid)
        os.kill(first, signal.SIGKILL)
        client = await Client.connect(f"127.0.0.1:{temporal}")
        deadline = time.monotonic() + 120
        while True:
            now = worker_pids(dev.process.pid) - {first}
            if now and now & await polling_pids(client):
                break
            assert dev.process.poll() is None, dev.text
            assert time.monotonic() < deadline, f"no new worker polls:\n{dev.text}"
            await asyncio.sleep(0.5)
        assert "worker exited with code -9; starting it again in 1s." in dev.text
        assert_stops_clean(dev, signal.SIGINT)
