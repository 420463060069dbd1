"""One trace from POST /v1/events through the journey's workflow to its activities, on the dev
server, the real FastAPI app (instrumented) and a worker whose client carries the plugin."""

from __future__ import annotations

import gc
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from journeyman.tracing import configure_tracing, temporal_plugins
from persistence import Database
from tests.api.helpers import API_KEY, event, eventually
from tests.support import capturing_worker, running_app
from workflows.contracts import EVENT_SIGNAL, JOURNEY_STEP, RECORD_LIFECYCLE_BATCH, SEND_MESSAGE


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(
        database_url=database_url, task_queue=task_queue, api_keys=[API_KEY], tracing=True
    )


@pytest.fixture
def exported(settings: Settings) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing(settings, "api", exporter=exporter)
    return exporter


@pytest.fixture
async def traced_client(
    dev_env: WorkflowEnvironment, settings: Settings, exported: InMemorySpanExporter
) -> Client:
    """A client of the session's dev server, with the plugin the settings ask for."""
    return await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        plugins=temporal_plugins(settings),
    )


@asynccontextmanager
async def stack(
    client: Client, database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker, both on `client`; sends are captured."""
    async with (
        capturing_worker(client, database, settings),
        running_app(settings, client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http,
    ):
        yield http


@pytest.fixture
async def api(
    traced_client: Client, database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with stack(traced_client, database, settings) as http:
        yield http


async def test_an_event_s_trace_runs_from_the_request_to_the_send(
    api: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    workflow_id = f"journey:welcome_series:{contact_id}"
    response = await api.post("/v1/events", json=event(contact_id, "signed_up"))
    assert response.status_code == 202
    await ended(api, exported, "welcome_series", contact_id, f"RunActivity:{SEND_MESSAGE}")

    spans = list(exported.get_finished_spans())
    request = only(spans, "POST /v1/events")
    start = only(spans, "StartWorkflow:welcome_series.v1", workflow_id)
    run = only(spans, "RunWorkflow:welcome_series.v1", workflow_id)
    schedule = only(spans, f"StartActivity:{SEND_MESSAGE}", workflow_id)
    send = only(spans, f"RunActivity:{SEND_MESSAGE}", workflow_id)
    assert [request.kind, start.kind, run.kind, schedule.kind, send.kind] == [
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    ]
    assert_chain(request, start, run, schedule, send)
    assert (request.resource.attributes or {}).get("service.name") == "journeyman-api"


async def test_a_signal_with_start_carries_the_trace_into_the_run_and_the_signal(
    api: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    # abandoned_cart re-enters after exit: its enrollments start with signal-with-start.
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    workflow_id = f"journey:abandoned_cart:{contact_id}:cart-1"
    body = event(contact_id, "cart_abandoned", cart_id="cart-1")
    assert (await api.post("/v1/events", json=body)).status_code == 202
    # Its first step waits an hour; the activity recording the enrollment runs at once.
    await ended(
        api, exported, "abandoned_cart", contact_id, f"RunActivity:{RECORD_LIFECYCLE_BATCH}"
    )

    spans = list(exported.get_finished_spans())
    request = only(spans, "POST /v1/events")
    start = only(spans, "SignalWithStartWorkflow:abandoned_cart.v2", workflow_id)
    run = only(spans, "RunWorkflow:abandoned_cart.v2", workflow_id)
    signal = only(spans, f"HandleSignal:{EVENT_SIGNAL}", workflow_id)
    assert_chain(request, start, run)
    assert_chain(request, start, signal)
    # The first lifecycle record (entered) is the run's first activity.
    records = sorted(
        (s for s in spans if s.name == f"RunActivity:{RECORD_LIFECYCLE_BATCH}"),
        key=lambda s: int(str((s.attributes or {})["temporalActivityID"])),
    )
    first = records[0]
    assert first.parent is not None
    schedule = next(s for s in spans if s.context.span_id == first.parent.span_id)
    assert_chain(run, schedule, first)


async def test_a_worker_restart_mid_journey_duplicates_no_span_and_keeps_the_run_s_span_id(
    traced_client: Client,
    database: Database,
    settings: Settings,
    exported: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    workflow_id = f"journey:welcome_series:{contact_id}"
    async with stack(traced_client, database, settings) as api:
        assert (
            await api.post("/v1/events", json=event(contact_id, "signed_up"))
        ).status_code == 202
        await eventually(
            lambda: _names(exported), lambda names: f"RunActivity:{SEND_MESSAGE}" in names
        )
        # The welcome sent (with its records), the run waits in its first pause.
        await eventually(lambda: _step(traced_client, workflow_id), lambda step: step == "pause_1")
    # The worker stopped with the run waiting two days; the next one replays its history.
    # Its abandoned coroutine ends the run's span whenever it is collected: now, for the test.
    gc.collect()
    before = list(exported.get_finished_spans())
    # ...which OpenTelemetry reports as a failed context detach: noise, filtered out.
    assert "Failed to detach context" not in caplog.text
    assert not any(s.name.startswith("RunWorkflow:") for s in before)
    async with stack(traced_client, database, settings) as api:
        await ended(api, exported, "welcome_series", contact_id, "")

    spans = list(exported.get_finished_spans())
    start = only(spans, "StartWorkflow:welcome_series.v1", workflow_id)
    run = only(spans, "RunWorkflow:welcome_series.v1", workflow_id)
    # Replay re-runs the workflow code up to the wait, yet no span is emitted twice...
    schedule = only(spans, f"StartActivity:{SEND_MESSAGE}", workflow_id)
    send = only(spans, f"RunActivity:{SEND_MESSAGE}", workflow_id)
    # ...and the replayed run's span has the id its children were given before the restart.
    assert schedule in before
    assert_chain(start, run, schedule, send)


async def _step(client: Client, workflow_id: str) -> str | None:
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.typed_search_attributes.get(JOURNEY_STEP)


async def _names(exporter: InMemorySpanExporter) -> list[str]:
    return [s.name for s in exporter.get_finished_spans()]


async def test_link_tokens_stay_out_of_the_request_spans(
    api: httpx.AsyncClient, exported: InMemorySpanExporter
) -> None:
    token = f"secret{uuid.uuid4().hex}"
    for path in (f"/u/{token}", f"/t/o/{token}", f"/t/c/{token}?u=https://example.com/"):
        await api.get(path)
    spans = [s for s in exported.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert {s.name for s in spans} == {"GET /u/{token}", "GET /t/o/{token}", "GET /t/c/{token}"}
    for span in spans:
        values = [*map(str, (span.attributes or {}).values()), span.name]
        assert not [v for v in values if token in v], span.name
        assert "{token}" in str((span.attributes or {})["http.target"])


def only(spans: list[ReadableSpan], name: str, workflow_id: str | None = None) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name
        and (workflow_id is None or (s.attributes or {}).get("temporalWorkflowID") == workflow_id)
    ]
    assert len(found) == 1, f"{len(found)} spans named {name}: {sorted(s.name for s in spans)}"
    return found[0]


def assert_chain(*spans: ReadableSpan) -> None:
    """Each span is the parent of the next, all in the first one's trace."""
    trace_id = spans[0].context.trace_id
    for parent, child in itertools.pairwise(spans):
        assert child.context.trace_id == trace_id, f"{child.name} is in another trace"
        assert child.parent is not None, f"{child.name} has no parent"
        assert child.parent.span_id == parent.context.span_id, (
            f"{child.name}'s parent is not {parent.name}"
        )


async def ended(
    api: httpx.AsyncClient,
    exporter: InMemorySpanExporter,
    journey: str,
    contact_id: str,
    awaited: str,
) -> None:
    """Once the span named `awaited` is exported, exit the enrollment and wait for its run's
    span: a workflow's span ends (and so is exported) only when the run does."""

    async def names() -> list[str]:
        return [s.name for s in exporter.get_finished_spans()]

    if awaited:
        await eventually(names, lambda found: awaited in found)
    exit_ = await api.post(f"/v1/contacts/{contact_id}/journeys/{journey}/exit", json={})
    assert exit_.status_code == 200, exit_.text
    await eventually(
        names, lambda found: any(n.startswith(f"RunWorkflow:{journey}.") for n in found)
    )
