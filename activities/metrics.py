"""The worker's metrics: the Temporal SDK's own, plus how long each send takes.

Both go out through one exporter, the Temporal runtime's Prometheus endpoint
(`JOURNEYMAN_WORKER_METRICS_ADDRESS`): the send latency is recorded on the SDK's metric meter,
so the worker needs no second port and no second metrics library.

The latency is taken by an activity interceptor rather than inside `send_message`, so the
send rules stay free of instrumentation and every attempt is timed the same way, whichever
branch answered it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from temporalio import activity
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult

SEND_LATENCY = "journeyman_send_latency_seconds"
# A send is a template render, a few queries and one provider call: SMTP and HTTP providers
# answer in tens of milliseconds to a few seconds; the top buckets catch timeouts.
SEND_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# The SDK core's own log lines (retried polls and completions while the server is away), as
# records of this logger.
CORE_LOGGER = "temporalio.core"


def worker_runtime(bind_address: str = "") -> Runtime:
    """The worker process's Temporal runtime: core logs through Python logging, and metrics
    for Prometheus on `bind_address` (host:port; "" for none).

    By default the core writes its warnings straight to stdout, from its own threads: when
    nobody reads that stdout (a full pipe, a log driver that blocks) the thread blocks and the
    worker stops polling while it looks alive. Forwarded, the core only buffers them; they
    reach the process's handlers (scrubbed by `journeyman.redaction.RedactingFilter`).
    Durations in seconds, the Prometheus convention (the SDK's default is milliseconds).
    """
    metrics = (
        PrometheusConfig(
            bind_address=bind_address,
            durations_as_seconds=True,
            histogram_bucket_overrides={SEND_LATENCY: list(SEND_LATENCY_BUCKETS)},
        )
        if bind_address
        else None
    )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
            ),
            metrics=metrics,
        )
    )


class SendLatencyInterceptor(Interceptor):
    """Times every `send_message` attempt, labelled by channel and outcome."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedSend(next)


class _TimedSend(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().activity_type != SEND_MESSAGE:
            return await self.next.execute_activity(input)
        request = input.args[0] if input.args else None
        channel = request.channel if isinstance(request, SendRequest) else "unknown"
        status = "error"  # an exception: Temporal retries the attempt (or fails the step)
        started = time.monotonic()
        try:
            result = await self.next.execute_activity(input)
            if isinstance(result, SendResult):
                status = result.status
            return result
        finally:
            # The meter of this worker's runtime: a no-op unless metrics are exported.
            activity.metric_meter().create_histogram_float(
                SEND_LATENCY, "Time one send_message attempt took, by channel and outcome.", "s"
            ).with_additional_attributes({"channel": channel, "status": status}).record(
                time.monotonic() - started
            )
