"""A whole Journeyman on real parts for the privacy tests: the API on the time-skipping
server, the worker as `journeyman worker` wires it (every activity real, the CRM sync against
the local HubSpot), with email captured by an in-memory mailer instead of SMTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import TemplateRenderer
from activities.crm import build_crm_connector
from journeyman.crm.start import ensure_crm_sync
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import Database
from tests.conftest import start_time_env
from tests.crm.fake_hubspot import CLIENT_SECRET, TOKEN, FakeHubSpot
from tests.support import running_app
from worker import build_worker

API_KEY = "privacy-key"
SALES = "sales@journeyman.test"


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own. These tests skip weeks with the whole
    stack (scorer, CRM sync, bulk) running and leave its workflows behind; on the session's
    shared server they would hold the clock of every later test."""
    env = await start_time_env()
    yield env
    await env.shutdown()


class KeptMail(list[EmailMessage]):
    """The mailer: every email the activities handed over, kept in memory."""

    def __bool__(self) -> bool:
        return True  # `mailer or SmtpMailer(...)` must take this one, empty or not

    async def send(self, message: EmailMessage) -> None:
        self.append(message)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self if m["To"] == address]


@dataclass
class Person:
    """A contact whose personal data is distinctive enough to find anywhere."""

    contact_id: str = field(default_factory=lambda: f"pv{uuid.uuid4().hex[:12]}")
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def email(self) -> str:
        return f"zeb.{self.token}@quaxworth.example"

    @property
    def phone(self) -> str:
        digits = str(int(self.token, 16))[-7:].rjust(7, "3")
        return f"+1 555 {digits}"

    @property
    def first_name(self) -> str:
        return f"Zebulon{self.token}"

    @property
    def last_name(self) -> str:
        return "Quaxworthington"

    def profile(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "phone": self.phone,
            "attributes": {
                "first_name": self.first_name,
                "last_name": self.last_name,
                "company": "Acme Widgets",
                "interests": ["hiking"],
                "hubspot_owner_id": "77",
            },
        }

    def secrets(self) -> dict[str, str]:
        return {
            "email": self.email,
            "phone": self.phone,
            "first name": self.first_name,
            "last name": self.last_name,
        }


@pytest.fixture
def settings(database_url: str, task_queue: str, hubspot: FakeHubSpot) -> Settings:
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[API_KEY],
        sales_email=SALES,
        quiet_hours="",
        frequency_caps="email:50/24h",
        crm="hubspot",
        hubspot_api_url=hubspot.url,
        hubspot_token=TOKEN,
        hubspot_client_secret=CLIENT_SECRET,
        # A push an hour after a change: a few iterations of the sync per skipped day.
        crm_sync_window_seconds=3600,
    )


@dataclass
class Stack:
    client: Client
    api: httpx.AsyncClient
    mail: KeptMail
    env: WorkflowEnvironment


@pytest.fixture
async def stack(
    time_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    http: httpx.AsyncClient,
) -> AsyncIterator[Stack]:
    client = time_env.client
    mail = KeptMail()
    worker = build_worker(
        client,
        settings,
        database,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=mail,
        starter=EnrollmentService(client=client, database=database, settings=settings).start,
        crm=build_crm_connector(settings, http),
    )
    async with (
        worker,
        running_app(settings, client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api,
    ):
        await ensure_crm_sync(client, settings)
        try:
            yield Stack(client=client, api=api, mail=mail, env=time_env)
        finally:
            # The sync polls forever; it must not outlive this test's worker.
            await client.get_workflow_handle("crm-sync").terminate("test over")


async def post_event(api: httpx.AsyncClient, contact_id: str, name: str, **props: Any) -> None:
    body = {"id": uuid.uuid4().hex, "contact_id": contact_id, "name": name, "properties": props}
    response = await api.post("/v1/events", json=body)
    assert response.status_code == 202, response.text


ITEMS = [{"name": "Trail boots", "quantity": 1, "price": 42}]


async def enroll_everywhere(api: httpx.AsyncClient, person: Person) -> str:
    """Create `person` and give them every kind of journey: welcome series (reads the contact
    before each topic email), lead nurturing (reads it, scoring qualifies it, sales is
    notified), an abandoned cart (reads it to pick the second reminder's channel), and a bulk
    enrollment in onboarding by contact id. Returns the bulk enrollment's workflow id."""
    cid = person.contact_id
    put = await api.put(f"/v1/contacts/{cid}", json=person.profile())
    assert put.status_code == 201, put.text
    await post_event(api, cid, "signed_up")
    await post_event(api, cid, "whitepaper_downloaded", title="Privacy at scale")
    await post_event(api, cid, "cart_abandoned", cart_id="cart-1", items=ITEMS, total=42)
    for path in ("/pricing", "/pricing/enterprise"):
        await post_event(api, cid, "page_viewed", path=path)
    await post_event(api, cid, "webinar_attended")
    bulk = await api.post("/v1/journeys/onboarding/bulk-enrollments", json={"contact_ids": [cid]})
    assert bulk.status_code == 202, bulk.text
    workflow_id: str = bulk.json()["workflow_id"]
    return workflow_id
