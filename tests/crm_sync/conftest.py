"""The CRM sync against real parts: the migrated database, the local HubSpot of tests/crm (a
real HTTP server speaking HubSpot's documented shapes) and the real HubSpot connector."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import col

from activities.crm import CrmConnector, build_crm_connector
from activities.crm_sync import CrmSyncActivities
from journeyman.settings import Settings
from persistence import CrmOutbox, CrmTask, Database
from tests.crm.fake_hubspot import FakeHubSpot

WINDOW = timedelta(seconds=10)
TEMPLATE = "sales/alert"


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sales alert template of our own (the journeys ship their real one)."""
    root = tmp_path_factory.mktemp("templates")
    (root / "sales").mkdir()
    (root / "sales" / "alert.subject.txt").write_text("Hot lead: {{ contact.email }}\n")
    (root / "sales" / "alert.txt").write_text(
        "{{ contact.email }} scored {{ contact.score }} ({{ contact.lifecycle_stage }}), "
        "company {{ contact.attributes.company }}. {{ reason }}\n"
    )
    (root / "sales" / "alert.html").write_text("<p>{{ contact.email }} {{ reason }}</p>\n")
    return root


@pytest.fixture
def settings(database_url: str, task_queue: str, hubspot: FakeHubSpot, templates: Path) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        crm="hubspot",
        hubspot_api_url=hubspot.url,
        hubspot_token=hubspot.token,
        hubspot_client_secret=hubspot.client_secret,
        crm_sync_window_seconds=WINDOW.total_seconds(),
        templates_dir=templates,
        sales_email="sales@example.com",
    )


@pytest.fixture
async def clean_crm(database: Database) -> None:
    """The outbox and task queue are global: start each sync test with them empty, so rows
    other tests left (contacts they changed) are not pushed here."""
    async with database.session() as session:
        await session.exec(delete(CrmOutbox))
        await session.exec(delete(CrmTask).where(col(CrmTask.status) == "pending"))
        await session.commit()


@pytest.fixture
def connector(settings: Settings, http: httpx.AsyncClient) -> CrmConnector:
    built = build_crm_connector(settings, http)
    assert built is not None
    return built


@pytest.fixture
def sync(
    database: Database, settings: Settings, connector: CrmConnector, clean_crm: None
) -> CrmSyncActivities:
    return CrmSyncActivities(database=database, settings=settings, connector=connector)


@pytest.fixture
def contact_id() -> str:
    return f"crm-{uuid.uuid4().hex[:12]}"


def email_of(contact_id: str) -> str:
    return f"{contact_id}@example.com"


def at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)
