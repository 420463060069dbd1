"""Running enrollments on the dev server for the replay check to fetch and replay.

Started once per test session: two on `replay_probe` v1, one on v2, one on the real
`welcome_series`. A worker runs them until each waits on its long timer, then stops: the
enrollments stay running on the server (as they would between deploys) with a few events of
history each. `replay_probe` exists only in these tests, so filtering on it sees these alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeyman.replay import running_query
from tests.replay.probe_journeys import PROBE, PROBE_CODE, ReplayProbeV1, ReplayProbeV2
from workflows.contracts import (
    EVENT_SIGNAL,
    READ_CONTACT,
    RECORD_LIFECYCLE,
    RECORD_LIFECYCLE_BATCH,
    SEND_MESSAGE,
    STATE_QUERY,
    ContactRequest,
    ContactSnapshot,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentState,
    Event,
    LifecycleAck,
    LifecycleBatch,
    LifecycleBatchAck,
    LifecycleRecord,
    SendRequest,
    SendResult,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes
from workflows.welcome_series import WelcomeSeries


@dataclass(frozen=True)
class Running:
    v1: list[str]
    v2: list[str]
    welcome: str

    @property
    def probes(self) -> list[str]:
        return [*self.v1, *self.v2]


@activity.defn(name=READ_CONTACT)
async def read_contact(request: ContactRequest) -> ContactSnapshot:
    return ContactSnapshot(contact_id=request.contact_id, exists=True)


@activity.defn(name=RECORD_LIFECYCLE)
async def record_lifecycle(record: LifecycleRecord) -> LifecycleAck:
    return LifecycleAck(recorded=True)


@activity.defn(name=RECORD_LIFECYCLE_BATCH)
async def record_lifecycle_batch(batch: LifecycleBatch) -> LifecycleBatchAck:
    return LifecycleBatchAck(recorded=len(batch.records))


@activity.defn(name=SEND_MESSAGE)
async def send_message(request: SendRequest) -> SendResult:
    return SendResult(message_id=request.message_id, status="sent")


async def start(client: Client, cls: type[Journey], task_queue: str) -> WorkflowHandle[Any, Any]:
    contact_id = f"c-{uuid.uuid4().hex[:10]}"
    trigger = Event(id=uuid.uuid4().hex, contact_id=contact_id, name=cls.triggers[0])
    return await client.start_workflow(
        cls.workflow_type(),
        EnrollmentInput(contact_id=contact_id, trigger=trigger),
        id=workflow_id_for(cls.name, contact_id),
        task_queue=task_queue,
        search_attributes=journey_search_attributes(cls, contact_id),
        result_type=EnrollmentResult,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[trigger],
    )


async def waiting_in(handle: WorkflowHandle[Any, Any], step: str) -> None:
    for _ in range(200):
        state = await handle.query(STATE_QUERY, result_type=EnrollmentState)
        if state.current_step == step:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {step}")


@pytest.fixture(scope="session")
async def running(dev_env: WorkflowEnvironment) -> AsyncIterator[Running]:
    client = dev_env.client
    task_queue = f"replay-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[*PROBE_CODE, WelcomeSeries],
        activities=[read_contact, record_lifecycle, record_lifecycle_batch, send_message],
    ):
        v1 = [await start(client, ReplayProbeV1, task_queue) for _ in range(2)]
        v2 = [await start(client, ReplayProbeV2, task_queue)]
        welcome = await start(client, WelcomeSeries, task_queue)
        await asyncio.gather(
            *(waiting_in(handle, "long_pause") for handle in v1),
            *(waiting_in(handle, "short_pause") for handle in v2),
            waiting_in(welcome, "pause_1"),
        )
    # Visibility is updated after the start; the replay check lists through it.
    for _ in range(200):
        if (await client.count_workflows(running_query(PROBE))).count >= 3:
            break
        await asyncio.sleep(0.05)
    yield Running(
        v1=[handle.id for handle in v1], v2=[handle.id for handle in v2], welcome=welcome.id
    )
