"""Tracing is off unless turned on; on, each process installs one replay-safe provider that
exports over OTLP/HTTP, and its Temporal clients carry the OpenTelemetry plugin."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import ProxyTracerProvider
from temporalio.contrib.opentelemetry import (
    OpenTelemetryInterceptor,
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
)
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from journeyman.temporal import connect
from journeyman.tracing import configure_tracing, temporal_plugins
from persistence import Database
from tests.api.helpers import API_KEY
from tests.support import running_app
from tests.tracing.otlp_sink import OtlpSink


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    with OtlpSink() as sink:
        yield sink


def test_tracing_is_off_by_default() -> None:
    assert Settings().tracing is False


async def test_off_adds_no_plugin_no_provider_no_request_spans_and_exports_nothing(
    dev_env: WorkflowEnvironment, database: Database, database_url: str, sink: OtlpSink
) -> None:
    # Off, even with a collector named: nothing may reach it.
    settings = Settings(
        database_url=database_url, api_keys=[API_KEY], otel_exporter_otlp_endpoint=sink.endpoint
    )
    assert temporal_plugins(settings) == []
    assert configure_tracing(settings, "worker") is None
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)

    client = await connect(
        settings.model_copy(
            update={"temporal_address": dev_env.client.service_client.config.target_host}
        )
    )
    interceptors = client.config(active_config=True)["interceptors"]
    assert not any(isinstance(i, OpenTelemetryInterceptor) for i in interceptors)

    async with running_app(settings, client, database) as app:
        assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api:
            assert (await api.get("/v1/contacts/nobody")).status_code == 404
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    assert sink.paths == []


async def test_on_the_client_carries_the_plugin(dev_env: WorkflowEnvironment) -> None:
    settings = Settings(
        tracing=True, temporal_address=dev_env.client.service_client.config.target_host
    )
    [plugin] = temporal_plugins(settings)
    assert isinstance(plugin, OpenTelemetryPlugin)
    client = await connect(settings)
    interceptors = client.config(active_config=True)["interceptors"]
    assert any(isinstance(i, OpenTelemetryInterceptor) for i in interceptors)


@pytest.mark.parametrize(
    ("setting", "environment"),
    [
        ("{sink}", None),
        ("{sink}/", None),
        ("{sink}/v1/traces", None),
        # Empty: the exporter's own OpenTelemetry environment decides.
        ("", "{sink}"),
    ],
)
def test_on_a_process_installs_one_replay_safe_provider_exporting_over_otlp_http(
    sink: OtlpSink, monkeypatch: pytest.MonkeyPatch, setting: str, environment: str | None
) -> None:
    if environment is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", environment.format(sink=sink.endpoint))
    settings = Settings(
        tracing=True,
        otel_exporter_otlp_endpoint=setting.format(sink=sink.endpoint),
        otel_service_name="jm-test",
    )
    provider = configure_tracing(settings, "worker")
    assert isinstance(provider, ReplaySafeTracerProvider)
    assert trace.get_tracer_provider() is provider
    # The first call in a process wins (OpenTelemetry lets the global be set once).
    assert configure_tracing(settings, "api") is provider

    with trace.get_tracer(__name__).start_as_current_span("hello"):
        pass
    assert provider.force_flush(5_000)

    assert sink.paths == ["/v1/traces"]
    [span] = sink.received()
    assert (span.name, span.service) == ("hello", "jm-test-worker")


async def test_on_the_app_traces_requests_and_its_own_client_carries_the_plugin(
    dev_env: WorkflowEnvironment, database: Database
) -> None:
    settings = Settings(
        tracing=True, temporal_address=dev_env.client.service_client.config.target_host
    )
    configure_tracing(settings, "api", exporter=InMemorySpanExporter())
    # No client given: the lifespan connects its own, as `journeyman api` does.
    app = create_app(settings, database=database)
    assert getattr(app, "_is_instrumented_by_opentelemetry", False)
    async with app.router.lifespan_context(app):
        interceptors = app.state.client.config(active_config=True)["interceptors"]
    assert any(isinstance(i, OpenTelemetryInterceptor) for i in interceptors)


@pytest.mark.parametrize("endpoint", ["otel-collector:4318", "grpc://otel:4317"])
def test_an_endpoint_that_is_not_an_http_url_is_refused(endpoint: str) -> None:
    settings = Settings(tracing=True, otel_exporter_otlp_endpoint=endpoint)
    with pytest.raises(ValueError, match="want an http"):
        configure_tracing(settings, "worker")
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
