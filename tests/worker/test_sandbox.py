"""The workflow sandbox `journeyman worker` runs journeys in (`worker.workflow_runner`).

The journey runtime's modules are passed through (loaded once, shared by every run); the
journey modules are not, so a journey that reads the wall clock or draws a random number is
still stopped. Run on the time-skipping server, through the worker `journeyman worker` builds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

import workflows.runtime
from journeyman.sandbox import ContextFreeSandboxedRunner
from journeyman.settings import Settings
from persistence import Database
from tests.conftest import start_time_env
from tests.worker.sandbox_journeys import ReadsTheClock, RollsADie
from tests.worker.unwrapped_journey import UnwrappedImport
from worker import PASSED_THROUGH, wired_worker, workflow_runner
from workflows.contracts import EnrollmentInput, Event
from workflows.runtime import Journey, journey_search_attributes

# Real seconds to wait for the worker to have taken the first workflow task.
TASK_DEADLINE = 60.0


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of this module's own: its runs are left failing or waiting."""
    environment = await start_time_env()
    yield environment
    await environment.shutdown()


async def start(
    env: WorkflowEnvironment, journey: type[Journey], task_queue: str
) -> WorkflowHandle[Any, Any]:
    contact_id = f"c-{uuid.uuid4().hex[:8]}"
    trigger = Event(id=uuid.uuid4().hex, contact_id=contact_id, name=journey.triggers[0])
    return await env.client.start_workflow(
        journey.workflow_type(),
        EnrollmentInput(contact_id=contact_id, trigger=trigger),
        id=f"{journey.name}-{contact_id}",
        task_queue=task_queue,
        search_attributes=journey_search_attributes(journey, contact_id),
    )


async def first_task_failure(handle: WorkflowHandle[Any, Any]) -> str:
    """The message of the run's first failed workflow task (polls its history)."""
    deadline = time.monotonic() + TASK_DEADLINE
    while time.monotonic() < deadline:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return str(event.workflow_task_failed_event_attributes.failure.message)
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return ""
        await asyncio.sleep(0.1)  # polling the server for the worker's answer, not a delay
    raise AssertionError(f"no workflow task of {handle.id} finished in {TASK_DEADLINE} s")


def test_the_runner_passes_the_runtime_through_but_not_the_journeys() -> None:
    restrictions = workflow_runner().restrictions
    assert set(PASSED_THROUGH) <= restrictions.passthrough_modules
    # A parent package passed through would take every journey module with it.
    assert "workflows" not in restrictions.passthrough_modules
    assert not restrictions.passthrough_all_modules


async def test_the_worker_runs_journeys_in_the_configured_sandbox(
    env: WorkflowEnvironment, database: Database
) -> None:
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient() as http:
        runner = wired_worker(env.client, settings, database, http).config()["workflow_runner"]
    # Context-free, as the client's converter allows (tests/worker/test_context_free_sandbox.py).
    assert isinstance(runner, ContextFreeSandboxedRunner)
    assert runner.restrictions == workflow_runner().restrictions


@pytest.mark.parametrize(
    ("journey", "call"),
    [(ReadsTheClock, "datetime.datetime.now"), (RollsADie, "random.randint")],
)
async def test_a_journey_calling_a_non_deterministic_function_is_stopped(
    env: WorkflowEnvironment, database: Database, journey: type[Journey], call: str
) -> None:
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient() as http:
        worker = wired_worker(env.client, settings, database, http, extra_workflows=[journey])
        async with worker:
            handle = await start(env, journey, settings.task_queue)
            try:
                message = await first_task_failure(handle)
            finally:
                await handle.terminate()
    assert call in message, message


async def test_the_runtime_is_shared_even_when_a_journey_imports_it_unwrapped(
    env: WorkflowEnvironment, database: Database
) -> None:
    """A journey module importing `workflows.runtime` outside `imports_passed_through()`
    still gets the worker's runtime, not a copy executed again for each run; the SDK's
    default sandbox would make that copy (what PASSED_THROUGH saves: ~12 ms of CPU per new
    run, measured on this machine)."""
    host = id(workflows.runtime.Journey)
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient() as http:
        worker = wired_worker(
            env.client, settings, database, http, extra_workflows=[UnwrappedImport]
        )
        async with worker:
            handle = await start(env, UnwrappedImport, settings.task_queue)
            try:
                assert await handle.query(UnwrappedImport.runtime_identity) == host
            finally:
                await handle.terminate()
    # The counterfactual: the SDK's default runner gives the run a copy of its own.
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[UnwrappedImport],
        activities=list(worker.config()["activities"]),
        workflow_runner=SandboxedWorkflowRunner(),
    ):
        handle = await start(env, UnwrappedImport, task_queue)
        try:
            assert await handle.query(UnwrappedImport.runtime_identity) != host
        finally:
            await handle.terminate()
