"""Across processes, as deployed: the API here, `journeyman worker` a real process exporting to
a local OTLP collector. The trace context crosses in the Temporal headers, so the worker's
spans join the API request's trace."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import PROJECT_ROOT, Settings
from journeyman.smtp_sink import SmtpSink
from journeyman.tracing import configure_tracing, temporal_plugins
from persistence import Database
from tests.api.helpers import API_KEY, event, eventually
from tests.support import running_app
from tests.tracing.otlp_sink import OtlpSink, ReceivedSpan
from workflows.contracts import SEND_MESSAGE


@pytest.fixture
def collector() -> Iterator[OtlpSink]:
    with OtlpSink() as sink:
        yield sink


@pytest.fixture
def mail() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as sink:
        yield sink


@pytest.fixture
async def worker(
    dev_env: WorkflowEnvironment,
    database_url: str,
    task_queue: str,
    collector: OtlpSink,
    mail: SmtpSink,
    tmp_path: Path,
) -> AsyncIterator[Path]:
    """`journeyman worker` with tracing on; yields its log."""
    env = {
        **os.environ,
        "JOURNEYMAN_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_TASK_QUEUE": task_queue,
        "JOURNEYMAN_SMTP_HOST": mail.host,
        "JOURNEYMAN_SMTP_PORT": str(mail.port),
        # The welcome email must go out whatever the time of day.
        "JOURNEYMAN_QUIET_HOURS": "",
        "JOURNEYMAN_TRACING": "true",
        "JOURNEYMAN_OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        # Export batches every 100 ms rather than every 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "journeyman.cli", "worker",
            env=env, cwd=PROJECT_ROOT, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        yield log
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0, log.read_text()


async def test_the_worker_process_joins_the_request_s_trace(
    dev_env: WorkflowEnvironment,
    database: Database,
    database_url: str,
    task_queue: str,
    collector: OtlpSink,
    mail: SmtpSink,
    worker: Path,
) -> None:
    settings = Settings(
        database_url=database_url, task_queue=task_queue, api_keys=[API_KEY], tracing=True
    )
    api_spans = InMemorySpanExporter()
    configure_tracing(settings, "api", exporter=api_spans)
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        plugins=temporal_plugins(settings),
    )
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    workflow_id = f"journey:welcome_series:{contact_id}"
    async with (
        running_app(settings, client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api,
    ):
        created = await api.put(
            f"/v1/contacts/{contact_id}", json={"email": f"{contact_id}@example.com"}
        )
        assert created.status_code in (200, 201), created.text
        assert (
            await api.post("/v1/events", json=event(contact_id, "signed_up"))
        ).status_code == 202
        await mail.wait_for(1, within=30)
        await eventually(
            lambda: received(collector),
            lambda spans: f"RunActivity:{SEND_MESSAGE}" in {s.name for s in spans},
            within=15,
        )
        # The run's own span is exported when the run ends.
        exit_ = await api.post(f"/v1/contacts/{contact_id}/journeys/welcome_series/exit", json={})
        assert exit_.status_code == 200, exit_.text
        await eventually(
            lambda: received(collector),
            lambda spans: "RunWorkflow:welcome_series.v1" in {s.name for s in spans},
            within=15,
        )

    [request] = [s for s in api_spans.get_finished_spans() if s.name == "POST /v1/events"]
    [start] = [
        s for s in api_spans.get_finished_spans() if s.name == "StartWorkflow:welcome_series.v1"
    ]
    worker_spans = [
        s for s in collector.received() if s.attributes.get("temporalWorkflowID") == workflow_id
    ]
    run = one(worker_spans, "RunWorkflow:welcome_series.v1")
    schedule = one(worker_spans, f"StartActivity:{SEND_MESSAGE}")
    send = one(worker_spans, f"RunActivity:{SEND_MESSAGE}")

    trace_id = request.context.trace_id
    assert {run.trace_id, schedule.trace_id, send.trace_id} == {trace_id}
    assert run.parent_span_id == start.context.span_id
    assert schedule.parent_span_id == run.span_id
    assert send.parent_span_id == schedule.span_id
    assert {run.service, send.service} == {"journeyman-worker"}
    assert request.resource.attributes.get("service.name") == "journeyman-api"


async def received(collector: OtlpSink) -> list[ReceivedSpan]:
    return collector.received()


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name}: {sorted(s.name for s in spans)}"
    return found[0]
