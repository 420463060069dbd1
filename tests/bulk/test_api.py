"""`POST /v1/journeys/{name}/bulk-enrollments` and its progress, on the dev server with the
bulk workflow's worker; the enrolled journeys wait unexecuted on a queue nobody polls."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.bulk import MAX_IDS
from persistence import Database, EventRecord
from tests.api.helpers import API_KEY, eventually
from tests.bulk.conftest import BulkSetup, bulk_setup, make_contacts
from tests.support import running_app
from workflows.contracts import BULK_ENROLLMENT, BulkEnrollmentInput

BASE = "/v1/journeys/welcome_series/bulk-enrollments"


@pytest.fixture
async def setup(dev_env: WorkflowEnvironment, database: Database, database_url: str) -> BulkSetup:
    made = bulk_setup(dev_env.client, database, database_url)
    made.settings.api_keys = [API_KEY]
    return made


@pytest.fixture
async def api(setup: BulkSetup) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        setup.worker(),
        running_app(setup.settings, setup.client, setup.database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


async def finished(api: httpx.AsyncClient, url: str) -> dict[str, Any]:
    async def progress() -> dict[str, Any]:
        response = await api.get(url)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return await eventually(progress, lambda body: body["status"] != "running", within=30)


async def test_a_json_list_is_enrolled_and_its_progress_read(
    api: httpx.AsyncClient, database: Database
) -> None:
    ids = await make_contacts(database, 30)
    sent = ids + ids[:5] + ["ghost-1"]  # duplicates are dropped, the ghost is skipped
    response = await api.post(BASE, json={"contact_ids": sent, "starts_per_second": 100})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["journey"] == "welcome_series"
    assert body["total"] == 31
    assert body["source"].startswith("list:")
    assert body["workflow_id"] == f"bulk:welcome_series:{body['id']}"
    assert body["progress_url"].endswith(f"{BASE}/{body['id']}")

    final = await finished(api, body["progress_url"])
    assert final["status"] == "completed"
    assert (final["total"], final["done"], final["started"], final["failed"]) == (31, 31, 30, 0)
    assert final["skipped"] == {"unknown_contact": 1}
    assert final["eta_seconds"] == 0.0
    assert 0 < final["rate"] <= 100
    assert final["summary"].startswith("completed: 31/31 done (30 started, 1 skipped")


@pytest.mark.parametrize(
    "csv_body",
    ["contact_id,email\n{0},a@x.test\n\n{1},b@x.test\n", "{0}\r\n{1}\r\n", "\ufeff{0}\n{1}"],
    ids=["header", "lines", "bom"],
)
async def test_a_csv_list_is_enrolled(
    api: httpx.AsyncClient, database: Database, csv_body: str
) -> None:
    ids = await make_contacts(database, 2)
    response = await api.post(
        f"{BASE}?starts_per_second=20",
        content=csv_body.format(*ids).encode(),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["total"] == 2
    assert response.json()["starts_per_second"] == 20
    final = await finished(api, response.json()["progress_url"])
    assert final["started"] == 2


async def test_a_segment_is_enrolled(api: httpx.AsyncClient, database: Database) -> None:
    ids = await make_contacts(database, 3)
    now = datetime.now(UTC)
    async with database.session() as session:
        for contact_id in ids:
            for n in range(2):
                session.add(
                    EventRecord(
                        id=f"e-{uuid.uuid4().hex}",
                        contact_id=contact_id,
                        name="product_viewed",
                        properties={"category": "tv"},
                        occurred_at=now - timedelta(hours=n + 1),
                    )
                )
        await session.commit()
    response = await api.post(BASE, json={"segment": "tv_browsers_not_buyers"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["source"] == "segment:tv_browsers_not_buyers"
    assert body["total"] >= 3
    final = await finished(api, body["progress_url"])
    assert final["status"] == "completed"
    assert final["done"] >= 3 and final["started"] >= 3
    assert final["starts_per_second"] == 50.0  # the setting's default


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"contact_ids": []}, "no contact ids"),
        ({"contact_ids": ["ok", "has space", "a:b"]}, "not valid contact ids"),
        ({"contact_ids": [f"c{n}" for n in range(MAX_IDS + 1)]}, "too many"),
        ({"segment": "no_such_segment"}, "unknown segment 'no_such_segment'"),
        ({}, "either"),
        ({"segment": "inactive_30d", "contact_ids": ["a"]}, "either"),
        ({"contact_ids": ["a"], "starts_per_second": 0}, "greater than 0"),
        ({"contact_ids": ["a"], "extra": 1}, "Extra inputs"),
    ],
)
async def test_bad_json_bodies_are_refused_with_a_reason(
    api: httpx.AsyncClient, body: dict[str, Any], detail: str
) -> None:
    response = await api.post(BASE, json=body)
    assert response.status_code == 422, response.text
    assert detail in json.dumps(response.json()["detail"])


@pytest.mark.parametrize(
    ("csv_body", "detail"),
    [
        ("", "no contact ids"),
        ("\n \n", "no contact ids"),
        ("a,b\nc,d\n", "line 1: 2 columns"),
        ("contact_id,email\nc1,x\n,y\n", "line 3: no contact_id"),
        ("c 1\n", "not valid contact ids"),
    ],
)
async def test_bad_csv_is_refused_with_a_reason(
    api: httpx.AsyncClient, csv_body: str, detail: str
) -> None:
    response = await api.post(BASE, content=csv_body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


async def test_other_refusals(api: httpx.AsyncClient) -> None:
    unknown_journey = await api.post(
        "/v1/journeys/nope/bulk-enrollments", json={"contact_ids": ["a"]}
    )
    assert unknown_journey.status_code == 404
    assert "unknown journey 'nope'" in unknown_journey.json()["detail"]
    not_json = await api.post(BASE, content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    latin1 = await api.post(
        BASE, content="é\n".encode("latin-1"), headers={"Content-Type": "text/csv"}
    )
    assert latin1.status_code == 422 and "UTF-8" in latin1.json()["detail"]
    xml = await api.post(BASE, content=b"<ids/>", headers={"Content-Type": "application/xml"})
    assert xml.status_code == 415
    huge = await api.post(
        BASE, content=b"x" * (8 * 1024 * 1024 + 1), headers={"Content-Type": "text/csv"}
    )
    assert huge.status_code == 413
    for bulk_id in (uuid.uuid4().hex, "not-an-id"):
        missing = await api.get(f"{BASE}/{bulk_id}")
        assert missing.status_code == 404, missing.text
        assert "no bulk enrollment" in missing.json()["detail"]


async def test_temporal_down_is_a_503(setup: BulkSetup, database: Database) -> None:
    from temporalio.client import Client

    ids = await make_contacts(database, 1)
    down = await Client.connect("127.0.0.1:1", lazy=True)
    async with (
        running_app(setup.settings, down, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        response = await client.post(BASE, json={"contact_ids": ids})
        progress = await client.get(f"{BASE}/{uuid.uuid4().hex}")
    assert response.status_code == 503, response.text
    assert progress.status_code == 503, progress.text


async def test_a_scheduled_runs_progress_is_read_by_its_scheduled_id(
    api: httpx.AsyncClient, setup: BulkSetup, database: Database
) -> None:
    """A journey's schedule starts `bulk:<journey>:scheduled` and Temporal appends the time:
    that run's progress is readable like one started through the API."""
    ids = await make_contacts(database, 3)
    list_id, _ = await setup.service.create_list(ids)
    bulk_id = "scheduled-2026-11-23T10:00:00Z"
    await setup.client.start_workflow(
        BULK_ENROLLMENT,
        BulkEnrollmentInput(journey="welcome_series", list_id=list_id, starts_per_second=100),
        id=f"bulk:welcome_series:{bulk_id}",
        task_queue=setup.settings.task_queue,
    )
    final = await finished(api, f"{BASE}/{bulk_id}")
    assert (final["status"], final["started"]) == ("completed", 3)
    assert (await api.get(f"{BASE}/scheduled-tomorrow")).status_code == 404
