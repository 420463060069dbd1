"""Re-entry rules under concurrent duplicate triggers: one enrollment, every answer truthful.

Ten requests for the same enrollment, each with its own event id, are in flight at once
against the real dev server, the real worker and the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from persistence import Database
from tests.api.helpers import event, eventually, parked_in, wait_for_rows
from workflows.welcome_series import WelcomeSeries

DUPLICATES = 10


async def post_at_once(api: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[Any]:
    responses = await asyncio.gather(*(api.post("/v1/events", json=body) for body in bodies))
    assert [r.status_code for r in responses] == [202] * len(bodies)
    [routing] = {len(r.json()["journeys"]) for r in responses}
    assert routing == 1
    return [r.json()["journeys"][0] for r in responses]


def actions(answers: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((a["action"], a["reason"]) for a in answers)


async def runs_of(client: Client, workflow_id: str) -> list[str]:
    """Every run of the workflow id the server knows, from visibility."""
    return [
        execution.run_id
        async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"')
    ]


async def signals_in(client: Client, workflow_id: str, run_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return sum(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events
    )


async def test_after_exit_ten_duplicate_carts_start_one_enrollment_the_rest_signal_it(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    workflow_id = f"journey:abandoned_cart:{contact_id}:cart-7"
    bodies = [event(contact_id, "cart_abandoned", cart_id="cart-7") for _ in range(DUPLICATES)]

    answers = await post_at_once(api, bodies)

    assert actions(answers) == {("started", None): 1, ("signalled", None): DUPLICATES - 1}
    assert {a["workflow_id"] for a in answers} == {workflow_id}
    await parked_in(dev_env.client, workflow_id, "grace_period")
    [row] = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    # Every one of the ten events reached that one run: the start signal and nine more.
    assert await signals_in(dev_env.client, workflow_id, row.run_id) == DUPLICATES
    started = next(b for b, a in zip(bodies, answers, strict=True) if a["action"] == "started")
    assert row.trigger_event_id == started["id"]
    assert await eventually(lambda: runs_of(dev_env.client, workflow_id), bool) == [row.run_id]


async def test_never_ten_duplicate_sign_ups_start_one_enrollment_and_refuse_the_rest(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    workflow_id = f"journey:welcome_series:{contact_id}"
    bodies = [event(contact_id, "signed_up") for _ in range(DUPLICATES)]

    answers = await post_at_once(api, bodies)

    assert actions(answers) == {
        ("started", None): 1,
        ("skipped", "reentry_never"): DUPLICATES - 1,
    }
    await parked_in(dev_env.client, workflow_id, "pause_1")
    [row] = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    # Refused, so not delivered either: the run holds no signal at all (its trigger came in
    # its input).
    assert await signals_in(dev_env.client, workflow_id, row.run_id) == 0
    assert await eventually(lambda: runs_of(dev_env.client, workflow_id), bool) == [row.run_id]


async def test_never_refuses_a_late_duplicate_the_same_way_before_and_after_its_row_exists(
    api: httpx.AsyncClient, contact_id: str, database: Database
) -> None:
    first = await api.post("/v1/events", json=event(contact_id, "signed_up"))
    racing = await api.post("/v1/events", json=event(contact_id, "signed_up"))  # row may be absent
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    late = await api.post("/v1/events", json=event(contact_id, "signed_up"))  # row present

    assert first.json()["journeys"][0]["action"] == "started"
    for refused in (racing, late):
        assert refused.json()["journeys"] == [
            {
                "journey": "welcome_series",
                "workflow_id": f"journey:welcome_series:{contact_id}",
                "action": "skipped",
                "reason": "reentry_never",
            }
        ]


async def test_always_ten_duplicates_replace_the_running_enrollment_once(
    api: httpx.AsyncClient,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(WelcomeSeries, "reentry", "always")
    workflow_id = f"journey:welcome_series:{contact_id}"
    client = dev_env.client
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await api.post(
        "/v1/events", json={**event(contact_id, "signed_up"), "occurred_at": a_minute_ago}
    )
    [before] = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)

    answers = await post_at_once(api, [event(contact_id, "signed_up") for _ in range(DUPLICATES)])

    # The sign-up of a minute ago is replaced, once: the duplicates that lose the race find
    # the winner's run, started by a trigger of the same moment, and are delivered to it.
    assert actions(answers) == {("started", None): 1, ("signalled", None): DUPLICATES - 1}
    replaced = await client.get_workflow_handle(workflow_id, run_id=before.run_id).describe()
    assert replaced.status == WorkflowExecutionStatus.TERMINATED
    running = await client.get_workflow_handle(workflow_id).describe()
    assert running.status == WorkflowExecutionStatus.RUNNING
    await parked_in(client, workflow_id, "pause_1")
    rows = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)
    assert [(row.run_id, row.status, row.ended_by) for row in rows] == [
        (before.run_id, "exited", "reentered"),
        (running.run_id, "active", None),
    ]
    assert await signals_in(client, workflow_id, running.run_id) == DUPLICATES
