"""Worker slot defaults: derived from the CPUs, overridable, and what the worker is given."""

from __future__ import annotations

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from journeyman.worker_defaults import (
    default_activity_slots,
    default_workflow_task_slots,
    usable_cpus,
)
from persistence import Database
from worker import wired_worker


@pytest.mark.parametrize(
    ("cpus", "workflow_tasks", "activities"),
    [
        (1, 5, 10),
        # The small machine of BENCHMARKS.md's wake-up peak: what drained where 100/100 spiralled.
        (2, 10, 20),
        (8, 40, 80),
        # Never above the SDK's own defaults.
        (64, 100, 100),
    ],
)
def test_slots_grow_with_the_cpus_up_to_the_sdk_defaults(
    cpus: int, workflow_tasks: int, activities: int
) -> None:
    assert default_workflow_task_slots(cpus) == workflow_tasks
    assert default_activity_slots(cpus) == activities


def test_the_settings_default_to_this_machines_slots() -> None:
    settings = Settings()
    cpus = usable_cpus()
    assert settings.worker_max_concurrent_workflow_tasks == default_workflow_task_slots(cpus)
    assert settings.worker_max_concurrent_activities == default_activity_slots(cpus)


def test_the_environment_overrides_the_derived_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "100")
    monkeypatch.setenv("JOURNEYMAN_WORKER_MAX_CONCURRENT_ACTIVITIES", "3")
    settings = Settings()
    assert settings.worker_max_concurrent_workflow_tasks == 100
    assert settings.worker_max_concurrent_activities == 3


async def test_the_worker_takes_the_default_slots_and_cache(
    time_env: WorkflowEnvironment, database: Database, task_queue: str
) -> None:
    settings = Settings(task_queue=task_queue)
    async with httpx.AsyncClient() as http:
        config = wired_worker(time_env.client, settings, database, http).config()
    assert config["max_concurrent_workflow_tasks"] == default_workflow_task_slots()
    assert config["max_concurrent_activities"] == default_activity_slots()
    assert config["max_cached_workflows"] == settings.worker_max_cached_workflows
