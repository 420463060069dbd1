"""The catalog, manual enrollment, and the re-entry rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, delete
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from journeyman.enrollments import SAME_ENTRY_WINDOW, EnrollmentService
from journeyman.settings import Settings
from persistence import Database
from persistence.models import Enrollment
from tests.api.helpers import (
    SentMessages,
    enrollment_rows,
    event,
    parked_in,
    result_of,
    wait_for_rows,
)
from workflows import catalog
from workflows.contracts import Event, StartJourneyRequest
from workflows.welcome_series import WelcomeSeries


async def test_the_catalog_lists_every_journey_as_declared(api: httpx.AsyncClient) -> None:
    journeys = {j["name"]: j for j in (await api.get("/v1/journeys")).json()}
    # Every journey module is listed (new ones land as modules: the catalog finds them).
    assert sorted(journeys) == sorted(cls.name for cls in catalog.latest())
    assert {
        "abandoned_cart",
        "birthday",
        "lead_nurturing",
        "onboarding",
        "post_purchase",
        "reengagement",
        "welcome_series",
    } <= set(journeys)
    # Versions and wording change as journeys evolve; they must match the newest class.
    newest = catalog.get("abandoned_cart")
    cart = journeys["abandoned_cart"]
    # How many run on each version depends on what other tests left running.
    details = cart.pop("version_details")
    assert cart == {
        "name": "abandoned_cart",
        "version": newest.version,
        "versions": list(range(1, newest.version + 1)),
        "description": newest.description,
        "triggers": ["cart_abandoned"],
        "goals": ["order_placed"],
        "exits": ["unsubscribed"],
        "waits_for": [],
        "key": "cart_id",
        "reentry": "after_exit",
    }
    assert [(d["version"], d["newest"], d["in_code"]) for d in details] == [
        (version, version == newest.version, True) for version in range(1, newest.version + 1)
    ]
    assert details[-1]["description"] == newest.description
    assert all(isinstance(d["active"], int) and d["active"] >= 0 for d in details)
    assert journeys["welcome_series"]["reentry"] == "never"
    assert journeys["lead_nurturing"]["waits_for"] == ["lead.qualified", "demo_attended"]
    assert journeys["onboarding"]["triggers"] == ["lifecycle.customer"]
    # Scheduled journeys: enrolled from a segment, no trigger event.
    assert (journeys["reengagement"]["triggers"], journeys["reengagement"]["goals"]) == ([], ["*"])
    assert (journeys["birthday"]["triggers"], journeys["birthday"]["reentry"]) == ([], "after_exit")


async def test_the_catalog_counts_the_enrollments_running_on_each_version(
    api: httpx.AsyncClient, database: Database
) -> None:
    async def cart_versions() -> dict[int, dict[str, Any]]:
        journeys = {j["name"]: j for j in (await api.get("/v1/journeys")).json()}
        return {d["version"]: d for d in journeys["abandoned_cart"]["version_details"]}

    added = [
        Enrollment(
            run_id=uuid.uuid4().hex,
            workflow_id=f"journey:abandoned_cart:c-{uuid.uuid4().hex[:8]}:cart",
            journey="abandoned_cart",
            version=version,
            contact_id=f"c-{uuid.uuid4().hex[:8]}",
            status=status,
            entered_at=datetime.now(UTC),
        )
        # Version 99 stands for a version deleted from the code while enrollments run on it.
        for version, status in ((1, "active"), (1, "active"), (1, "converted"), (99, "active"))
    ]
    before = await cart_versions()
    try:
        async with database.session() as session:
            session.add_all(added)
            await session.commit()
        after = await cart_versions()
        listed = {j["name"]: j for j in (await api.get("/v1/journeys")).json()}
    finally:
        async with database.session() as session:
            run_ids = [row.run_id for row in added]
            await session.exec(delete(Enrollment).where(col(Enrollment.run_id).in_(run_ids)))
            await session.commit()

    assert after[1]["active"] - before[1]["active"] == 2
    assert after[2]["active"] == before[2]["active"]
    assert after[99] == {
        "version": 99,
        "newest": False,
        "active": 1,
        "in_code": False,
        "description": "",
    }
    # New enrollments still go to the newest version the code has.
    assert listed["abandoned_cart"]["version"] == catalog.get("abandoned_cart").version
    assert 99 not in listed["abandoned_cart"]["versions"]


async def test_a_manual_enrollment_starts_once(
    api: httpx.AsyncClient, contact_id: str, sent: SentMessages
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
    path = "/v1/journeys/welcome_series/enrollments"

    first = await api.post(path, json={"contact_id": contact_id})
    [welcome] = await sent.settled(contact_id, 1)  # it ran (and recorded its entry)
    again = await api.post(path, json={"contact_id": contact_id})

    assert first.status_code == 201
    assert first.json() == {
        "journey": "welcome_series",
        "workflow_id": f"journey:welcome_series:{contact_id}",
        "action": "started",
    }
    assert welcome.trigger is None
    assert again.status_code == 409
    assert "no re-entry" in again.json()["detail"]


async def test_a_start_by_another_journey_answers_the_same_when_its_activity_retries(
    app: FastAPI, sent: SentMessages, contact_id: str, dev_env: WorkflowEnvironment
) -> None:
    service: EnrollmentService = app.state.enrollments
    request = StartJourneyRequest(
        journey="abandoned_cart", contact_id=contact_id, key="cart-9", started_by="journey:x"
    )
    first = await service.start(request)
    retry = await service.start(request)
    manual = await service.start(
        StartJourneyRequest(journey="abandoned_cart", contact_id=contact_id, key="cart-9")
    )
    assert (first.action, retry.action) == ("started", "started")
    assert (manual.action, manual.reason) == ("skipped", "already_active")
    description = await dev_env.client.get_workflow_handle(first.workflow_id).describe()
    assert "Started by `journey:x`" in (await description.static_details() or "")


async def test_a_manual_enrollment_in_a_keyed_journey_needs_the_key(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    path = "/v1/journeys/abandoned_cart/enrollments"

    missing = await api.post(path, json={"contact_id": contact_id})
    started = await api.post(path, json={"contact_id": contact_id, "key": "cart-7"})
    running = await api.post(path, json={"contact_id": contact_id, "key": "cart-7"})
    extra = await api.post(
        "/v1/journeys/welcome_series/enrollments", json={"contact_id": contact_id, "key": "k"}
    )

    assert missing.status_code == 422
    assert "keyed by 'cart_id'" in missing.json()["detail"]
    assert started.status_code == 201
    assert started.json()["workflow_id"] == f"journey:abandoned_cart:{contact_id}:cart-7"
    assert running.status_code == 409
    assert "already running" in running.json()["detail"]
    assert extra.status_code == 422


async def test_unknown_journey_or_contact_is_404(api: httpx.AsyncClient, contact_id: str) -> None:
    unknown_journey = await api.post(
        "/v1/journeys/nurture_forever/enrollments", json={"contact_id": contact_id}
    )
    unknown_contact = await api.post(
        "/v1/journeys/welcome_series/enrollments", json={"contact_id": contact_id}
    )
    assert unknown_journey.status_code == 404
    assert unknown_journey.json()["detail"].startswith("unknown journey 'nurture_forever'")
    assert "welcome_series" in unknown_journey.json()["detail"]
    assert unknown_contact.status_code == 404
    assert unknown_contact.json() == {"detail": f"unknown contact '{contact_id}'"}


async def test_reentry_never_skips_a_contact_who_was_enrolled_before(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, f"journey:welcome_series:{contact_id}", "pause_1")
    await api.post(f"/v1/contacts/{contact_id}/journeys/welcome_series/exit", json={})
    await wait_for_rows(database, contact_id, lambda rows: rows[0].status == "exited")

    again = await api.post("/v1/events", json=event(contact_id, "signed_up"))

    assert again.json()["journeys"] == [
        {
            "journey": "welcome_series",
            "workflow_id": f"journey:welcome_series:{contact_id}",
            "action": "skipped",
            "reason": "reentry_never",
        }
    ]


async def test_reentry_never_still_answers_started_to_a_retry_of_the_first_event(
    app: FastAPI, sent: SentMessages, contact_id: str, database: Database
) -> None:
    # The API died after routing but before storing the answer: routing runs again.
    service: EnrollmentService = app.state.enrollments
    signed_up = Event(id="e-first", contact_id=contact_id, name="signed_up")
    first = await service.route(signed_up)
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    retry = await service.route(signed_up)
    assert [r.action for r in first] == [r.action for r in retry] == ["started"]


async def test_reentry_after_exit_signals_a_running_one_and_restarts_an_ended_one(
    api: httpx.AsyncClient, contact_id: str, database: Database, dev_env: WorkflowEnvironment
) -> None:
    workflow_id = f"journey:abandoned_cart:{contact_id}:cart-a"
    first = await api.post("/v1/events", json=event(contact_id, "cart_abandoned", cart_id="cart-a"))
    while_running = await api.post(
        "/v1/events", json=event(contact_id, "cart_abandoned", cart_id="cart-a")
    )
    await parked_in(dev_env.client, workflow_id, "grace_period")
    await api.post(
        f"/v1/contacts/{contact_id}/journeys/abandoned_cart/exit", json={"key": "cart-a"}
    )
    await result_of(dev_env.client, workflow_id)
    after_exit = await api.post(
        "/v1/events", json=event(contact_id, "cart_abandoned", cart_id="cart-a")
    )

    assert [j["action"] for j in first.json()["journeys"]] == ["started"]
    assert [j["action"] for j in while_running.json()["journeys"]] == ["signalled"]
    assert [j["action"] for j in after_exit.json()["journeys"]] == ["started"]
    rows = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)
    assert [row.status for row in rows] == ["exited", "active"]
    assert rows[0].run_id != rows[1].run_id


async def test_reentry_always_replaces_the_running_enrollment(
    api: httpx.AsyncClient,
    app: FastAPI,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(WelcomeSeries, "reentry", "always")
    workflow_id = f"journey:welcome_series:{contact_id}"
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await api.post(
        "/v1/events", json={**event(contact_id, "signed_up"), "occurred_at": a_minute_ago}
    )
    [old] = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)

    second = event(contact_id, "signed_up")
    response = await api.post("/v1/events", json=second)

    assert [j["action"] for j in response.json()["journeys"]] == ["started"]
    replaced = await dev_env.client.get_workflow_handle(workflow_id, run_id=old.run_id).describe()
    assert replaced.status == WorkflowExecutionStatus.TERMINATED
    rows = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)
    assert [(row.run_id, row.status, row.ended_by) for row in rows] == [
        (old.run_id, "exited", "reentered"),
        (rows[1].run_id, "active", None),
    ]
    # Routing the same event again (a retry after a crash) must not replace its own run.
    service: EnrollmentService = app.state.enrollments
    retry = await service.route(Event(id=second["id"], contact_id=contact_id, name="signed_up"))
    assert [r.action for r in retry] == ["started"]
    current = await dev_env.client.get_workflow_handle(workflow_id).describe()
    assert current.run_id == rows[1].run_id
    assert current.status == WorkflowExecutionStatus.RUNNING


async def test_reentry_always_takes_a_trigger_soon_after_the_running_ones_as_the_same_entry(
    api: httpx.AsyncClient,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A double submit, or a retry under a new id: delivered, not a second welcome email.
    monkeypatch.setattr(WelcomeSeries, "reentry", "always")
    now = datetime.now(UTC)
    first = await api.post(
        "/v1/events",
        json={**event(contact_id, "signed_up"), "occurred_at": now.isoformat()},
    )
    [row] = await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)
    soon_after, late_arrival = (
        {**event(contact_id, "signed_up"), "occurred_at": at.isoformat()}
        for at in (now + SAME_ENTRY_WINDOW, now - timedelta(hours=1))
    )

    answers = [await api.post("/v1/events", json=body) for body in (soon_after, late_arrival)]

    assert [j["action"] for j in first.json()["journeys"]] == ["started"]
    for answer in answers:
        assert [j["action"] for j in answer.json()["journeys"]] == ["signalled"]
    current = await dev_env.client.get_workflow_handle(row.workflow_id).describe()
    assert (current.run_id, current.status) == (row.run_id, WorkflowExecutionStatus.RUNNING)


async def test_reentry_always_closes_the_row_of_a_run_replaced_before_it_wrote_one(
    dev_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    contact_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No worker polls this queue: the first run never records its own entry.
    monkeypatch.setattr(WelcomeSeries, "reentry", "always")
    idle = settings.model_copy(update={"task_queue": f"idle-{contact_id}"})
    service = EnrollmentService(client=dev_env.client, database=database, settings=idle)
    workflow_id = f"journey:welcome_series:{contact_id}"

    def signed_up(minutes: int) -> StartJourneyRequest:
        occurred_at = datetime.now(UTC) + timedelta(minutes=minutes)
        trigger = Event(f"e-{minutes}-{contact_id}", contact_id, "signed_up", {}, occurred_at)
        return StartJourneyRequest("welcome_series", contact_id, trigger=trigger)

    first = await service.start(signed_up(-1))
    first_run = (await dev_env.client.get_workflow_handle(workflow_id).describe()).run_id
    second = await service.start(signed_up(0))

    assert (first.action, second.action) == ("started", "started")
    [row] = await enrollment_rows(database, contact_id)
    assert (row.run_id, row.status, row.ended_by) == (first_run, "exited", "reentered")
    assert (row.journey, row.version, row.workflow_id) == ("welcome_series", 1, workflow_id)
    await dev_env.client.get_workflow_handle(workflow_id).terminate(reason="test over")
