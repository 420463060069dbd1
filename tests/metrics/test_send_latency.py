"""The send latency interceptor: every `send_message` attempt timed, labelled by its outcome.

Recorded on a Temporal runtime whose metrics go to an in-memory buffer, so the test reads the
exact updates the SDK would export.
"""

from __future__ import annotations

import asyncio
import gc
import uuid

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.runtime import (
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.metrics import SEND_LATENCY, SendLatencyInterceptor
from tests.metrics.send_workflow import OneSend
from workflows.contracts import (
    READ_CONTACT,
    SEND_MESSAGE,
    ContactRequest,
    ContactSnapshot,
    SendRequest,
    SendResult,
)

# Each channel of the fake provider answers differently.
DELAY = 0.05


@activity.defn(name=SEND_MESSAGE)
async def send_message(request: SendRequest) -> SendResult:
    await asyncio.sleep(DELAY)
    if request.channel == "push":
        raise ApplicationError("provider down", non_retryable=True)
    if request.channel == "sms":
        return SendResult(message_id=request.message_id, status="suppressed", reason="test")
    return SendResult(message_id=request.message_id, status="sent")


@activity.defn(name=READ_CONTACT)
async def read_contact(request: ContactRequest) -> ContactSnapshot:
    return ContactSnapshot(contact_id=request.contact_id, exists=True)


def _request(channel: str) -> SendRequest:
    return SendRequest(
        message_id=f"m-{uuid.uuid4().hex}",
        workflow_id="wf",
        run_id="run",
        journey="j",
        version=1,
        step="s",
        contact_id="c",
        channel=channel,
        template="t",
    )


async def test_every_send_attempt_is_timed_with_its_channel_and_outcome(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    buffer = MetricBuffer(1000, duration_format=MetricBufferDurationFormat.SECONDS)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    client = await Client.connect(dev_env.client.service_client.config.target_host, runtime=runtime)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[OneSend],
            activities=[send_message, read_contact],
            interceptors=[SendLatencyInterceptor()],
        ):
            answers = [
                await client.execute_workflow(
                    OneSend.run, _request(channel), id=f"wf-{uuid.uuid4()}", task_queue=task_queue
                )
                for channel in ("email", "sms", "push")
            ]
        assert answers == ["sent", "suppressed", "error"]
        updates = [u for u in buffer.retrieve_updates() if u.metric.name == SEND_LATENCY]
    finally:
        del client, runtime
        gc.collect()  # the runtime's threads must not outlive the test into interpreter exit

    assert sorted(_labels(u) for u in updates) == [
        ("email", "sent", SEND_MESSAGE),
        ("push", "error", SEND_MESSAGE),
        ("sms", "suppressed", SEND_MESSAGE),
    ]
    for update in updates:
        assert update.metric.unit == "s"
        assert DELAY <= float(update.value) < 5


def _labels(update: BufferedMetricUpdate) -> tuple[str, str, str]:
    attributes = update.attributes
    return (
        str(attributes["channel"]),
        str(attributes["status"]),
        str(attributes["activity_type"]),
    )
