"""The worker's runtime hands the SDK core's log lines to Python logging, never to stdout.

The core's default is to write them to stdout from its own threads; a worker whose stdout
nobody reads then blocks in that write and stops polling (tests/chaos/test_worker_watchdog.py
wedges one that way). Here the server goes away under a worker built on `worker_runtime`:
the core's complaints arrive as `temporalio.core` records, and stdout stays empty.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.metrics import CORE_LOGGER, worker_runtime
from tests.api.helpers import eventually
from tests.chaos.outage_support import TcpProxy


@workflow.defn(name="core_logs_idle", sandboxed=False)
class Idle:
    @workflow.run
    async def run(self) -> None:
        return None


async def test_core_warnings_reach_python_logging_and_not_stdout(
    dev_env: WorkflowEnvironment,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    host, _, port = dev_env.client.service_client.config.target_host.rpartition(":")
    caplog.set_level(logging.WARNING, logger=CORE_LOGGER)
    async with TcpProxy(host, int(port)) as proxy:
        client = await Client.connect(
            proxy.address, namespace=dev_env.client.namespace, runtime=worker_runtime()
        )
        worker = Worker(client, task_queue=f"core-logs-{uuid.uuid4().hex[:8]}", workflows=[Idle])
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.sleep(1)  # polling
            proxy.cut()  # the server is gone for this worker: its polls fail

            async def core_records() -> int:
                return sum(r.name.startswith(CORE_LOGGER) for r in caplog.records)

            await eventually(core_records, lambda count: count > 0, within=30)
        finally:
            proxy.restore()
            await worker.shutdown()
            await asyncio.gather(running, return_exceptions=True)
    out, _ = capfd.readouterr()
    assert out == ""
