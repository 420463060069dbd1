"""`PUT /v1/contacts/{id}` takes `lifecycle_stage` (HubSpot's stages only) and marks the mapped
fields that actually changed for the CRM sync, in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from journeyman.settings import Settings
from persistence import CrmFieldState, Database
from tests.api.helpers import API_KEY
from tests.crm_sync.conftest import email_of
from tests.crm_sync.helpers import outbox_row
from tests.support import running_app


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    keyed = settings.model_copy(update={"api_keys": [API_KEY]})
    async with (
        running_app(keyed, dev_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client


async def field_states(database: Database, contact_id: str) -> dict[str, str]:
    async with database.session() as session:
        rows = await session.exec(
            select(CrmFieldState).where(CrmFieldState.contact_id == contact_id)
        )
        return {row.field: row.source for row in rows.all()}


async def test_lifecycle_stage_must_be_one_of_hubspots(
    api: httpx.AsyncClient, contact_id: str
) -> None:
    response = await api.put(f"/v1/contacts/{contact_id}", json={"lifecycle_stage": "vip"})
    assert response.status_code == 422
    assert "customer" in response.text
    response = await api.put(f"/v1/contacts/{contact_id}", json={"lifecycle_stage": "customer"})
    assert response.status_code == 201
    assert response.json()["lifecycle_stage"] == "customer"


async def test_only_mapped_fields_that_changed_are_marked(
    api: httpx.AsyncClient, database: Database, contact_id: str, clean_crm: None
) -> None:
    path = f"/v1/contacts/{contact_id}"
    created = await api.put(
        path,
        json={
            "email": email_of(contact_id),
            "lifecycle_stage": "lead",
            "timezone": "Europe/Paris",
            "attributes": {"company": "Acme", "shoe_size": 42},
        },
    )
    assert created.status_code == 201
    assert await field_states(database, contact_id) == {
        "email": "local",
        "lifecycle_stage": "local",
        "attributes.company": "local",
    }
    first = await outbox_row(database, contact_id)
    assert first is not None and first.status == "pending"

    # The same values again, and an unmapped change: nothing for the CRM.
    same = await api.put(
        path,
        json={"lifecycle_stage": "lead", "attributes": {"company": "Acme", "shoe_size": 43}},
    )
    assert same.status_code == 200
    unchanged = await outbox_row(database, contact_id)
    assert unchanged is not None and unchanged.changed_at == first.changed_at

    await api.put(path, json={"phone": "+15550100", "attributes": {"company": "Acme 2"}})
    moved = await outbox_row(database, contact_id)
    assert moved is not None and moved.changed_at > first.changed_at
    assert moved.first_changed_at == first.first_changed_at
    assert (await field_states(database, contact_id))["phone"] == "local"
