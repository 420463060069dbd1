"""OpenTelemetry tracing, off unless `JOURNEYMAN_TRACING=true`.

One trace follows an event from the HTTP request that brought it, through the enrollment's
start (the Temporal client span), into the journey workflow and the activities it runs: the
temporalio OpenTelemetry plugin carries the trace context in the Temporal headers. Spans go
to an OTLP/HTTP collector (`JOURNEYMAN_OTEL_EXPORTER_OTLP_ENDPOINT`, else the exporter's own
`OTEL_EXPORTER_OTLP_*` environment and default, http://localhost:4318).

The plugin requires the global tracer provider to be its replay-safe one: span ids inside a
workflow come from the workflow's deterministic random, and spans are not re-emitted when a
workflow is replayed after a worker restart. So each process sets it once, before it connects
to Temporal and before its worker is built.

Two guards on top of the plugin: a run's span cut short by a worker evicting the run is not
exported (the replayed run exports it when it really ends), and the signed tokens of
unsubscribe and tracking links are masked in request spans.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span as ApiSpan
from temporalio import workflow
from temporalio.client import Plugin
from temporalio.contrib.opentelemetry import (
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
    create_tracer_provider,
)

from journeyman.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

Component = Literal["api", "worker"]

# The OTLP/HTTP path for traces, appended to a base endpoint as OTEL_EXPORTER_OTLP_ENDPOINT is.
TRACES_PATH = "/v1/traces"

# Probes and scrapes every few seconds would drown the traces worth reading.
UNTRACED_URLS = "/healthz,/metrics"

# Unsubscribe and tracking links carry a signed token that is the credential: a trace store
# must not collect them. (The span name and `http.route` already use the route template.)
_TOKEN_IN_PATH = re.compile(r"(/u|/t/[oc])/[^/?#]+")
_URL_ATTRIBUTES = ("http.target", "http.url", "url.path", "url.full")

# The provider this process installed; the global one can be set only once per process.
_installed: ReplaySafeTracerProvider | None = None


def configure_tracing(
    settings: Settings, component: Component, exporter: SpanExporter | None = None
) -> ReplaySafeTracerProvider | None:
    """Install the process's tracer provider when tracing is on; None when it is off.

    Spans are batched to the OTLP/HTTP exporter, or handed one by one to `exporter` (tests).
    The first call in a process wins: later calls return the provider it installed.
    """
    global _installed
    if not settings.tracing:
        return None
    if _installed is not None:
        return _installed
    processor: SpanProcessor = (
        BatchSpanProcessor(otlp_exporter(settings))
        if exporter is None
        else SimpleSpanProcessor(exporter)
    )
    provider = create_tracer_provider(
        resource=Resource.create({SERVICE_NAME: f"{settings.otel_service_name}-{component}"})
    )
    provider.add_span_processor(WorkflowSpansEndInTheirRun(processor))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        # OpenTelemetry keeps the first provider set (e.g. by `opentelemetry-instrument`);
        # the Temporal plugin refuses to build a worker on any but its replay-safe one.
        raise RuntimeError(
            "another OpenTelemetry tracer provider was installed first; Journeyman's tracing "
            "needs its own (run without opentelemetry-instrument)"
        )
    _installed = provider
    _quiet_evicted_detach()
    log.info("Tracing on: service %s-%s", settings.otel_service_name, component)
    return provider


class WorkflowSpansEndInTheirRun(SpanProcessor):
    """Passes spans on to `inner`, except a workflow run's span ended outside that run.

    When a worker evicts a cached run (a restart, a deploy, cache pressure), the SDK abandons
    the run's coroutine, and garbage collection later ends its open spans from outside any
    workflow: `RunWorkflow:...` (or a signal handler's) would be exported as complete while the
    journey goes on for weeks. The next worker replays the run, which re-creates the span with
    the same ids and exports it when the run really ends, so dropping the early one loses
    nothing. (temporalio 1.35's plugin does not guard against this itself.)
    """

    _INBOUND = ("RunWorkflow:", "HandleSignal:", "HandleUpdate:", "ValidateUpdate:")

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        run_id = (span.attributes or {}).get("temporalRunID")
        if run_id is not None and span.name.startswith(self._INBOUND):
            inside = workflow.in_workflow() and workflow.info().run_id == run_id
            if not inside:
                log.debug("Dropped %s of run %s, ended outside the run", span.name, run_id)
                return
        self._inner.on_end(span)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def otlp_exporter(settings: Settings) -> OTLPSpanExporter:
    """The OTLP/HTTP span exporter, at `settings.otel_exporter_otlp_endpoint` when set."""
    base = settings.otel_exporter_otlp_endpoint.strip()
    if not base:
        # The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, headers and so on itself.
        return OTLPSpanExporter()
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"bad JOURNEYMAN_OTEL_EXPORTER_OTLP_ENDPOINT {base!r}: want an http(s) URL, "
            "e.g. http://otel-collector:4318"
        )
    endpoint = base if base.endswith(TRACES_PATH) else base.rstrip("/") + TRACES_PATH
    return OTLPSpanExporter(endpoint=endpoint)


def temporal_plugins(settings: Settings) -> list[Plugin]:
    """Plugins for `Client.connect`: the OpenTelemetry one when tracing is on.

    On the client, the plugin also applies to every worker built from it. With
    `add_temporal_spans` each start, workflow run, signal and activity gets its own span,
    which is what makes a journey readable in a trace viewer.
    """
    if not settings.tracing:
        return []
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


def instrument_app(app: FastAPI, settings: Settings) -> None:
    """Give each HTTP request a server span (the root of its trace) when tracing is on."""
    if not settings.tracing:
        return
    # Imported here: the worker, which never serves HTTP, need not load it.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=trace.get_tracer_provider(),
        excluded_urls=UNTRACED_URLS,
        server_request_hook=_redact_tokens,
        # One span per request, not three: ASGI send/receive spans say nothing here.
        exclude_spans=["receive", "send"],
    )


def _redact_tokens(span: ApiSpan, scope: dict[str, object]) -> None:
    """`/u/<token>` -> `/u/{token}` in the URL attributes the ASGI middleware has just set."""
    for key in _URL_ATTRIBUTES:
        value = getattr(span, "attributes", {}).get(key)
        if isinstance(value, str) and _TOKEN_IN_PATH.search(value):
            span.set_attribute(key, _TOKEN_IN_PATH.sub(r"\1/{token}", value))


class _EvictedRunDetach(logging.Filter):
    """Drops OpenTelemetry's "Failed to detach context" error for a workflow run's coroutine
    that the SDK abandoned on eviction: garbage collection closes it (GeneratorExit) in another
    context, where its context token cannot be reset. Nothing is wrong, and the run is
    replayed by the next worker; every other detach failure is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            record.getMessage() == "Failed to detach context"
            and error is not None
            and isinstance(error.__context__, GeneratorExit)
        )


def _quiet_evicted_detach() -> None:
    logger = logging.getLogger("opentelemetry.context")
    if not any(isinstance(f, _EvictedRunDetach) for f in logger.filters):
        logger.addFilter(_EvictedRunDetach())
