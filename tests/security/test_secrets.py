"""Secrets never appear in logs, error bodies or workflow histories.

A whole Journeyman runs with a distinctive value for every secret setting: the API and the
worker as `journeyman worker` wires it, email through a real SMTP server that wants a login,
SMS, push and a signed webhook through a real local HTTP provider, the CRM sync against the
local HubSpot. Journeys send on every channel (one SMS is refused by the provider), and the
API is called right and wrong in every way that answers an error. Then every log record (all
loggers at DEBUG, temporalio and httpx included), every response (body and headers), every
message row's recorded reason and every workflow history (payloads decoded) is searched for
each secret; the refused number is searched for in the histories (failures are redacted). The
recorded histories in tests/histories are searched for the dev defaults.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import journeyman.smtp_sink as smtp_sink
from journeyman.crm.contracts import CRM_SYNC_WORKFLOW_ID
from journeyman.crm.start import ensure_crm_sync
from journeyman.redaction import with_redaction
from journeyman.scoring.contracts import scorer_workflow_id
from journeyman.settings import DEV_API_KEY, Settings
from journeyman.signing import Signer, click_token
from persistence import Database, Enrollment, Message
from tests.api.helpers import eventually
from tests.channels.provider import FakeProvider, Received, Reply
from tests.conftest import start_time_env
from tests.crm.fake_hubspot import FakeHubSpot
from tests.integration.channel_journeys import CHANNEL_JOURNEYS, PushThenNotify, TextThenTellCrm
from tests.support import running_app
from worker import wired_worker
from workflows.contracts import EnrollmentInput, EnrollmentResult, Event, workflow_id_for
from workflows.runtime import Journey, journey_search_attributes

SECRETS = {
    "admin API key": "zqadminkey7d1f0e2b",
    "ingest API key": "zqingestkey4c9a13e5",
    "secret key": "zqsigningsecret8b2e6f0a",
    "SMTP password": "zqsmtppassword5e7c1d",
    "SMS auth token": "zqsmstoken3a8f4b2c",
    "push API token": "zqpushtoken9d0e7a61",
    "webhook secret": "zqwebhooksecret6b1c8e",
    "HubSpot token": "pat-na1-zqhubspot2f8d4c71",
    "HubSpot client secret": "zqhubspotclient0e5b9a",
    "CRM webhook secret": "zqcrmwebhook7c3e2f90",
    "feedback secret": "zqfeedbacksecret1a6d",
    "Mailgun signing key": "zqmailgunkey8e4f2b17",
}
SMTP_USER = "journeyman-smtp"
SID = "AC0zq1234"
INVALID_NUMBER = "+15005550001"  # the provider refuses it (Twilio's 21211)
DEV_SECRETS = {"dev API key": DEV_API_KEY} | {
    name: getattr(Settings(), field)
    for name, field in {
        "dev secret key": "secret_key",
        "dev SMS token": "sms_auth_token",
        "dev push token": "push_api_token",
        "dev webhook secret": "webhook_secret",
        "dev feedback secret": "feedback_secret",
        "dev CRM webhook secret": "crm_webhook_secret",
    }.items()
}
HISTORIES = Path(__file__).resolve().parent.parent / "histories"


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: the whole stack runs here (CRM sync
    included) and leaves workflows behind that would hold the shared server's clock."""
    env = await start_time_env()
    yield env
    await env.shutdown()


def variants(secret: str) -> set[str]:
    """The secret as it could show up: as is, and base64'd alone or in a Basic credential."""
    forms = {secret, base64.b64encode(secret.encode()).decode().rstrip("=")}
    forms.add(base64.b64encode(f"{SID}:{secret}".encode()).decode().rstrip("="))
    forms.add(base64.b64encode(f"{SMTP_USER}:{secret}".encode()).decode().rstrip("="))
    forms.add(base64.b64encode(f"\0{SMTP_USER}\0{secret}".encode()).decode().rstrip("="))
    return forms


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, secret in secrets.items()
        if any(form in text for form in variants(secret))
    ]


def decoded(document: Any) -> Iterator[str]:
    """Every string of a history's JSON, with each payload's base64 `data` decoded too."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "data" and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    yield base64.b64decode(value).decode("utf-8", "replace")
            yield from decoded(value)
    elif isinstance(document, list):
        for value in document:
            yield from decoded(value)
    elif isinstance(document, str):
        yield document


def history_text(document: Any) -> str:
    return json.dumps(document) + "\n" + "\n".join(decoded(document))


# ----- the parts -----------------------------------------------------------------------------


class LoginSink(smtp_sink.SmtpSink):
    """The SMTP sink, wanting AUTH PLAIN/LOGIN with our user and password (no TLS: local)."""

    def start(self) -> None:
        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            good = isinstance(data, LoginPassword) and (data.login, data.password) == (
                SMTP_USER.encode(),
                SECRETS["SMTP password"].encode(),
            )
            return AuthResult(success=good, handled=False)

        controller = smtp_sink._Controller(
            smtp_sink._Handler(self),
            hostname=self.host,
            port=self.port,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller


def provider_answer(received: Received) -> Reply:
    if received.path.endswith("/Messages.json"):
        if INVALID_NUMBER.replace("+", "%2B") in received.body.decode():
            message = f"The 'To' number {INVALID_NUMBER} is not a valid phone number."
            return Reply(400, {"code": 21211, "message": message, "status": 400})
        return Reply(201, {"sid": "SM0zq", "status": "queued"})
    if received.path == "/push":
        return Reply(200, {"id": "push-zq"})
    return Reply(204)


@pytest.fixture
def providers() -> Iterator[FakeProvider]:
    fake = FakeProvider(provider_answer)
    with fake.running():
        yield fake


@pytest.fixture
def sink() -> Iterator[LoginSink]:
    running = LoginSink("127.0.0.1", 0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings(
    database_url: str,
    task_queue: str,
    providers: FakeProvider,
    sink: LoginSink,
    hubspot: FakeHubSpot,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    monkeypatch.setattr(hubspot, "token", SECRETS["HubSpot token"])
    monkeypatch.setattr(hubspot, "client_secret", SECRETS["HubSpot client secret"])
    return Settings(
        database_url=database_url,
        task_queue=task_queue,
        api_keys=[SECRETS["admin API key"]],
        ingest_api_keys=[SECRETS["ingest API key"]],
        secret_key=SECRETS["secret key"],
        public_url="http://journeyman.test",
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_username=SMTP_USER,
        smtp_password=SECRETS["SMTP password"],
        smtp_timeout_seconds=5,
        email_from="Acme Outfitters <hello@shop.example.com>",
        sms_api_url=f"{providers.url}/2010-04-01",
        sms_account_sid=SID,
        sms_auth_token=SECRETS["SMS auth token"],
        push_api_url=f"{providers.url}/push",
        push_api_token=SECRETS["push API token"],
        webhook_url=f"{providers.url}/hook",
        webhook_secret=SECRETS["webhook secret"],
        provider_timeout_seconds=5,
        crm="hubspot",
        hubspot_api_url=hubspot.url,
        hubspot_token=SECRETS["HubSpot token"],
        hubspot_client_secret=SECRETS["HubSpot client secret"],
        crm_webhook_secret=SECRETS["CRM webhook secret"],
        # A push an hour after a change: reached while the SMS journey waits its hour.
        crm_sync_window_seconds=3600,
        feedback_secret=SECRETS["feedback secret"],
        mailgun_signing_key=SECRETS["Mailgun signing key"],
        quiet_hours="",
        frequency_caps="email:50/24h,sms:50/24h,push:50/24h",
    )


class Responses(list[httpx.Response]):
    async def keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.append(response)


async def enroll(
    client: Client, settings: Settings, journey: type[Journey], contact_id: str, **props: Any
) -> EnrollmentResult:
    trigger = Event(
        id=f"evt-{uuid.uuid4().hex[:8]}",
        contact_id=contact_id,
        name=journey.triggers[0],
        properties=props,
    )
    handle = await client.start_workflow(
        journey.workflow_type(),
        EnrollmentInput(contact_id=contact_id, trigger=trigger),
        id=workflow_id_for(journey.name, contact_id, None),
        task_queue=settings.task_queue,
        search_attributes=journey_search_attributes(journey, contact_id),
        result_type=EnrollmentResult,
    )
    result: EnrollmentResult = await handle.result()
    return result


@pytest.fixture
async def api(
    time_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Responses]]:
    responses = Responses()
    async with (
        running_app(settings, time_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            event_hooks={"response": [responses.keep]},
        ) as client,
    ):
        yield client, responses


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS['admin API key']}"}


async def call_wrongly(api: httpx.AsyncClient, contact_id: str) -> None:
    """Every kind of refusal the API gives, each answered in JSON (or a page) we keep."""
    ingest = {"Authorization": f"Bearer {SECRETS['ingest API key']}"}
    almost = {"Authorization": f"Bearer {SECRETS['admin API key'][:-1]}"}
    calls: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", f"/v1/contacts/{contact_id}", {}, None),
        ("GET", f"/v1/contacts/{contact_id}", almost, None),
        ("GET", f"/v1/contacts/{contact_id}", ingest, None),
        ("GET", "/metrics", ingest, None),
        ("GET", "/journeys/welcome_series", almost, None),
        ("GET", "/v1/contacts/nobody-zq", admin(), None),
        ("PUT", f"/v1/contacts/{contact_id}", admin(), {"email": "not an address"}),
        ("POST", "/v1/events", ingest, {"id": "x"}),
        ("POST", "/v1/journeys/no_such_journey/enrollments", admin(), {"contact_id": "x"}),
        ("POST", "/v1/webhooks/email", {"Authorization": "Bearer nope"}, {"events": []}),
        ("POST", "/v1/webhooks/email", admin(), {"events": []}),
        ("POST", "/v1/webhooks/crm", {"X-Journeyman-Timestamp": "1"}, {"events": []}),
        ("POST", "/v1/webhooks/crm", {"X-HubSpot-Signature-v3": "x"}, []),
        ("GET", "/t/c/forged", {}, None),
        ("GET", f"/t/c/{click_token(Signer('other'), 'm', 0)}", {}, None),
        ("POST", "/u/forged", {}, None),
    ]
    for method, path, headers, body in calls:
        answer = await api.request(method, path, headers=headers, json=body)
        assert answer.status_code >= 400, (method, path, answer.text)
    stamp = str(int(time.time()))
    token = uuid.uuid4().hex
    mac = hmac.new(b"wrong", f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": stamp, "token": token, "signature": mac}}
    answer = await api.post("/v1/webhooks/email", json={**body, "event-data": {}})
    assert answer.status_code == 401


async def histories(client: Client, database: Database, contact_ids: list[str]) -> dict[str, str]:
    async with database.session() as session:
        query = select(Enrollment.workflow_id).where(col(Enrollment.contact_id).in_(contact_ids))
        workflow_ids = set((await session.exec(query)).all())
    workflow_ids |= {scorer_workflow_id(contact_id) for contact_id in contact_ids}
    workflow_ids.add(CRM_SYNC_WORKFLOW_ID)
    found: dict[str, str] = {}
    for workflow_id in sorted(workflow_ids):
        try:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        except Exception:  # a scorer not started for this contact: nothing to read
            continue
        found[f"history of {workflow_id}"] = history_text(json.loads(history.to_json()))
    return found


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_no_secret_reaches_logs_error_bodies_or_histories(
    time_env: WorkflowEnvironment,
    database: Database,
    settings: Settings,
    api: tuple[httpx.AsyncClient, Responses],
    sink: LoginSink,
    providers: FakeProvider,
    hubspot: FakeHubSpot,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("temporalio", "httpx", "httpcore", "aiosmtplib", "mail.log", "journeyman"):
        # Through caplog, so each level is put back after the test (left at DEBUG, these
        # loggers slowed every later test of the session down to timeouts).
        caplog.set_level(logging.DEBUG, logger=name)
    # The worker's client redacts failures, as `journeyman worker`'s does (`connect_options`).
    client, (http_api, responses) = with_redaction(time_env.client, settings), api
    worker = wired_worker(client, settings, database, http, extra_workflows=CHANNEL_JOURNEYS)
    ada, bob = f"zq-{uuid.uuid4().hex[:10]}", f"zq-{uuid.uuid4().hex[:10]}"
    async with worker:
        await ensure_crm_sync(client, settings)
        try:
            for contact_id, phone in ((ada, "+442079460958"), (bob, INVALID_NUMBER)):
                profile = {
                    "email": f"{contact_id}@example.com",
                    "phone": phone,
                    "timezone": "Europe/London",
                    "attributes": {"first_name": "Ada", "push_token": "fcm:zq-device"},
                    "subscriptions": {"email": True, "sms": True, "push": True},
                }
                put = await http_api.put(
                    f"/v1/contacts/{contact_id}", headers=admin(), json=profile
                )
                assert put.status_code == 201, put.text
            signed_up = {"id": uuid.uuid4().hex, "contact_id": ada, "name": "signed_up"}
            posted = await http_api.post("/v1/events", headers=admin(), json=signed_up)
            assert posted.status_code == 202, posted.text
            await sink.wait_for(1, within=30)  # the welcome email, sent with a login

            order = {"order_id": "A-1", "items": [], "total": 1.0}
            pushed = await enroll(client, settings, PushThenNotify, ada, **order)
            cart = {"cart": {"cart_id": "c-1", "items": [], "cart_url": "https://x.example"}}
            texted = await enroll(client, settings, TextThenTellCrm, ada, **cart)
            refused = await enroll(client, settings, TextThenTellCrm, bob, **cart)
            await eventually(
                lambda: _async(len(hubspot.requests)), lambda seen: seen > 0, within=30
            )
            await call_wrongly(http_api, ada)
            recorded = await histories(client, database, [ada, bob])
        finally:
            # The sync polls forever; it must not outlive this test's worker.
            await client.get_workflow_handle(CRM_SYNC_WORKFLOW_ID).terminate("test over")

    # The flows really ran, with every secret in use.
    assert [m["To"] for m in sink.messages] == [f"{ada}@example.com"]
    paths = {received.path for received in providers.received}
    assert {"/push", "/hook", f"/2010-04-01/Accounts/{SID}/Messages.json"} <= paths
    outcomes = [step.outcome for run in (pushed, texted, refused) for step in run.steps]
    assert "sent" in outcomes, outcomes
    assert any(outcome.startswith("failed") for outcome in outcomes), outcomes
    assert any(
        r.headers.get("authorization") == f"Bearer {SECRETS['HubSpot token']}"
        for r in hubspot.requests
    )

    async with database.session() as session:
        rows = (
            await session.exec(select(Message).where(col(Message.contact_id).in_([ada, bob])))
        ).all()
    texts: dict[str, str] = {f"message row {row.message_id}": row.model_dump_json() for row in rows}
    assert any(row.reason for row in rows)  # the refused SMS says why
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for index, record in enumerate(caplog.records):
        texts[f"log record {index} ({record.name})"] = formatter.format(record) + repr(
            getattr(record, "__dict__", {})
        )
    assert len(caplog.records) > 50  # DEBUG logging really was captured
    for index, response in enumerate(responses):
        where = f"response {index} ({response.request.method} {response.request.url.path})"
        texts[where] = response.text + repr(dict(response.headers))
    assert sum(r.status_code >= 400 for r in responses) >= 15
    texts |= recorded
    assert len(recorded) >= 4
    # The provider's refusal quoted the number (Twilio's 21211); the failed send in the
    # history says why without it.
    refusals = [text for text in recorded.values() if "21211 The 'To' number" in text]
    assert refusals and not [text for text in refusals if INVALID_NUMBER in text]

    assert leaks(texts, SECRETS) == []


async def _async(value: int) -> int:
    return value


def test_the_recorded_histories_hold_no_secret() -> None:
    files = sorted(HISTORIES.glob("*/*.json"))
    assert files
    texts = {
        str(path.relative_to(HISTORIES)): history_text(json.loads(path.read_text()))
        for path in files
    }
    assert leaks(texts, DEV_SECRETS | SECRETS) == []


def test_the_scan_finds_a_secret_in_any_form_it_could_take() -> None:
    """The scan itself could fail silently (a payload still base64'd, say): it must not."""
    password, token = SECRETS["SMTP password"], SECRETS["SMS auth token"]
    payload = base64.b64encode(json.dumps({"note": f"login {password}"}).encode()).decode()
    history = {"events": [{"input": {"payloads": [{"data": payload}]}}]}
    basic = base64.b64encode(f"{SID}:{token}".encode()).decode()
    texts = {
        "history": history_text(history),
        "header": f"Authorization: Basic {basic}",
        "clean": "nothing to see",
    }
    assert sorted(leaks(texts, SECRETS)) == [
        "SMS auth token in header",
        "SMTP password in history",
    ]
