"""The worker's metrics endpoint: `journeyman worker` run as in production, against the dev server.

The worker is a real process: the Temporal runtime's Prometheus exporter binds a port for the
life of a process, and `run_worker` is where the address setting is wired in.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from journeyman.enrollments import EnrollmentService
from journeyman.ports import free_port
from journeyman.settings import PROJECT_ROOT, Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database
from tests.api.helpers import eventually
from tests.metrics.helpers import family_names, sample
from workflows.contracts import StartJourneyRequest


@dataclass
class RunningWorker:
    task_queue: str
    metrics_url: str
    sink: SmtpSink
    log: Path

    async def scrape(self) -> str:
        async with httpx.AsyncClient() as http:
            try:
                response = await http.get(self.metrics_url)
            except httpx.TransportError:
                return ""  # not bound yet
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as sink:
        yield sink


@pytest.fixture(scope="module")
async def worker(
    dev_env: WorkflowEnvironment,
    database_url: str,
    sink: SmtpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningWorker]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "JOURNEYMAN_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_TASK_QUEUE": task_queue,
        "JOURNEYMAN_SMTP_HOST": sink.host,
        "JOURNEYMAN_SMTP_PORT": str(sink.port),
        # The welcome email must go out whatever the time of day.
        "JOURNEYMAN_QUIET_HOURS": "",
        "JOURNEYMAN_WORKER_METRICS_ADDRESS": address,
    }
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "journeyman.cli", "worker",
            env=env, cwd=PROJECT_ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield RunningWorker(task_queue, f"http://{address}/metrics", sink, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
    # A runtime with an exporter must not make the graceful stop unclean.
    assert process.returncode == 0, log.read_text()


async def test_worker_serves_the_temporal_sdk_metrics_of_its_task_queue(
    worker: RunningWorker,
) -> None:
    def pollers(text: str) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            if family.name == "temporal_num_pollers"
            for s in family.samples
            if s.labels.get("task_queue") == worker.task_queue
        )

    # The SDK's own series, for this worker's task queue: it polls the dev server.
    text = await eventually(worker.scrape, lambda text: pollers(text) > 0, within=30)
    assert "temporal_worker_task_slots_available" in family_names(text), worker.log.read_text()


async def test_send_latency_histogram_counts_a_send(
    worker: RunningWorker, dev_env: WorkflowEnvironment, database: Database
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
        await session.commit()
    settings = Settings(task_queue=worker.task_queue)
    started = await EnrollmentService(
        client=dev_env.client, database=database, settings=settings
    ).start(StartJourneyRequest(journey="welcome_series", contact_id=contact_id))
    assert started.action == "started"
    await worker.sink.wait_for(1, within=30)

    labels = {"task_queue": worker.task_queue, "channel": "email", "status": "sent"}

    async def count() -> float:
        return sample(await worker.scrape(), "journeyman_send_latency_seconds_count", **labels)

    assert await eventually(count, lambda n: n > 0, within=10) == 1
    text = await worker.scrape()
    assert sample(text, "journeyman_send_latency_seconds_bucket", le="+Inf", **labels) == 1
    assert 0 < sample(text, "journeyman_send_latency_seconds_sum", **labels) < 30
