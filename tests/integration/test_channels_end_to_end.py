"""SMS, push and webhook sends on the whole path: a journey in the time-skipping server, the
real send activity as the worker builds it (database, policy, adapters over one HTTP client),
and one real local HTTP server playing Twilio, a push API and a webhook receiver.

Each case asserts what the provider received, what the message log says and what the journey
did: the claim-before-send rule across Temporal's retries (5xx, 429 with Retry-After), a
permanent refusal recorded `failed` without a retry while the journey goes on, consent and
frequency caps on SMS, push and signed webhooks, and abandoned_cart's SMS second reminder.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import col, select
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

import worker as worker_module
from activities import SmtpMailer, TemplateRenderer
from activities.channels import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    build_channel_senders,
    verify_webhook_signature,
)
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database, Message
from tests.channels.helpers import (
    DEVICE_TOKEN,
    PUSH_TOKEN,
    SID,
    SMS_TOKEN,
    WEBHOOK_SECRET,
    settings_for,
)
from tests.channels.provider import FakeProvider, Received, Reply
from worker import build_worker
from workflows import catalog
from workflows.abandoned_cart import AbandonedCart
from workflows.contracts import (
    SEND_MESSAGE,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes
from workflows.splits import assign_variant

from .channel_journeys import CHANNEL_JOURNEYS, OfferByText, PushThenNotify, TextThenTellCrm

SMS_PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
PUSH_PATH = "/v1/push"
WEBHOOK_PATH = "/hooks/journeyman"
SMS_FROM = "+15005550006"
SMS_SID = "SM0123456789abcdef0123456789abcdef"
PUSH_ID = "push-7f3a"
# Twilio's magic test number that is never valid: 400 with error 21211.
INVALID_NUMBER = "+15005550001"
PHONE = "+44 20 7946 0958"
PHONE_E164 = "+442079460958"

CART: dict[str, Any] = {
    "cart_id": "cart-7",
    "items": [{"name": "Walnut desk", "quantity": 1, "price": "349.00"}],
    "cart_url": "https://shop.example.com/cart/cart-7",
}
ORDER: dict[str, Any] = {
    "order_id": "A-1001",
    "items": [{"name": "Trail Runner 2", "quantity": 1, "price": 129.0}],
    "total": 129.0,
}


# ----- the providers -------------------------------------------------------------------------


class Providers:
    """Twilio's Messages resource, a push API and a webhook receiver on one real HTTP server.

    Each checks its request as the real one would (path, auth, body shape, signature) before
    anything else. A failed check is answered 400 with what was wrong, on purpose not 401 as
    a real provider would: the adapters retry 401 for a day, a 400 fails the step at once and
    its words land in the message row the test reads. `sms_answers` are served, in order, to
    the next well-formed SMS requests instead of acceptance (a 500, a 429...).
    """

    def __init__(self) -> None:
        self.sms_answers: list[Reply] = []
        self.server = FakeProvider(self.answer)

    @property
    def url(self) -> str:
        return self.server.url

    def on(self, path: str) -> list[Received]:
        return [received for received in self.server.received if received.path == path]

    @property
    def sms(self) -> list[Received]:
        return self.on(SMS_PATH)

    @property
    def pushes(self) -> list[Received]:
        return self.on(PUSH_PATH)

    @property
    def webhooks(self) -> list[Received]:
        return self.on(WEBHOOK_PATH)

    def answer(self, received: Received) -> Reply:
        problem = _idempotency_problem(received)
        if received.path == SMS_PATH:
            return problem or self._twilio(received)
        if received.path == PUSH_PATH:
            return problem or _push_api(received)
        if received.path == WEBHOOK_PATH:
            return problem or _receiver(received)
        return Reply(404, {"error": f"no such endpoint {received.path}"})

    def _twilio(self, received: Received) -> Reply:
        credentials = base64.b64encode(f"{SID}:{SMS_TOKEN}".encode()).decode()
        if received.headers.get("Authorization") != f"Basic {credentials}":
            return _refused("20003 Authenticate")
        if received.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            return _refused("20001 form-encoded body expected")
        form = received.form()
        if set(form) != {"To", "From", "Body"} or form["From"] != SMS_FROM or not form["Body"]:
            return _refused(f"21602 To, From and Body are required, got {sorted(form)}")
        if form["To"] == INVALID_NUMBER:
            message = f"The 'To' number {INVALID_NUMBER} is not a valid phone number."
            return Reply(400, {"code": 21211, "message": message, "status": 400})
        if self.sms_answers:
            return self.sms_answers.pop(0)
        return Reply(201, {"sid": SMS_SID, "status": "queued", "to": form["To"]})


def _idempotency_problem(received: Received) -> Reply | None:
    key = received.headers.get("Idempotency-Key")
    if not key or received.headers.get("X-Journeyman-Message-Id") != key:
        return _refused("Idempotency-Key and X-Journeyman-Message-Id must name the message")
    return None


def _push_api(received: Received) -> Reply:
    if received.headers.get("Authorization") != f"Bearer {PUSH_TOKEN}":
        return _refused("unauthenticated: bad token")
    if received.headers.get("Content-Type") != "application/json":
        return _refused("JSON only")
    body = received.json()
    if set(body) != {"to", "title", "body", "data"} or not all(
        isinstance(body[key], str) and body[key] for key in ("to", "title", "body")
    ):
        return _refused("to, title, body and data are required")
    return Reply(200, {"id": PUSH_ID})


def _receiver(received: Received) -> Reply:
    """A team's own service: it verifies the signature over the raw body, then parses it."""
    if not verify_webhook_signature(
        WEBHOOK_SECRET,
        received.headers.get(TIMESTAMP_HEADER, ""),
        received.body,
        received.headers.get(SIGNATURE_HEADER, ""),
    ):
        return _refused("bad signature")
    if received.headers.get("Content-Type") != "application/json":
        return _refused("JSON only")
    received.json()
    return Reply(204)


def _refused(what: str) -> Reply:
    return Reply(400, {"message": f"test provider refused: {what}"})


# ----- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def providers() -> Iterator[Providers]:
    fake = Providers()
    with fake.server.running():
        yield fake


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def settings(
    with_test_journeys: None, providers: Providers, sink: SmtpSink, task_queue: str
) -> Settings:
    return settings_for(
        providers.url,
        task_queue=task_queue,
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        # The rules are the subject here, but not the time of day the suite runs at.
        quiet_hours="",
        frequency_caps="sms:1/24h",
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def no_hand_on(request: StartJourneyRequest) -> StartJourneyResult:
    raise AssertionError(f"no journey here starts another: {request}")


@pytest.fixture
def with_test_journeys(monkeypatch: pytest.MonkeyPatch) -> None:
    """`build_worker` registers this module's journeys too, besides every published one.

    Only the worker module's view of the catalog changes; routing and the rest see the real one.
    """
    journeys = [*catalog.all_versions(), *CHANNEL_JOURNEYS]
    monkeypatch.setattr(worker_module, "catalog", SimpleNamespace(all_versions=lambda: journeys))


@asynccontextmanager
async def worker(
    env: WorkflowEnvironment, settings: Settings, database: Database, http: httpx.AsyncClient
) -> AsyncIterator[None]:
    """The worker as `journeyman worker` builds it, its HTTP adapters on the fake providers."""
    renderer = TemplateRenderer.from_settings(settings)
    async with build_worker(
        env.client,
        settings,
        database,
        renderer=renderer,
        mailer=SmtpMailer.from_settings(settings),
        starter=no_hand_on,
        senders=build_channel_senders(settings, renderer, http),
    ):
        yield


# ----- helpers -------------------------------------------------------------------------------


async def add_contact(database: Database, contact_id: str | None = None, **fields: Any) -> str:
    """A contact with a fresh id (the database is shared by the whole session)."""
    contact_id = contact_id or f"c-{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {"email": None, "phone": PHONE, "timezone": "Europe/London", **fields}
    async with database.session() as session:
        session.add(Contact(contact_id=contact_id, **values))
        await session.commit()
    return contact_id


@dataclass
class Run:
    result: EnrollmentResult
    history: WorkflowHistory

    @property
    def outcomes(self) -> list[tuple[str, str]]:
        return [(step.name, step.outcome) for step in self.result.steps]

    def attempts(self, step: str) -> list[Attempt]:
        """Every send of `step`, oldest first (more than one if deferred)."""
        scheduled: dict[int, tuple[str, datetime]] = {}
        found: list[Attempt] = []
        for event in self.history.events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.activity_type.name != SEND_MESSAGE:
                    continue
                request = json.loads(attrs.input.payloads[0].data)
                # Not the call that records a send Temporal gave up on as failed.
                if request.get("give_up") is None:
                    scheduled[event.event_id] = (request["step"], _at(event.event_time))
            elif event.HasField("activity_task_started_event_attributes"):
                started = event.activity_task_started_event_attributes
                name, at = scheduled.get(started.scheduled_event_id, ("", _at(event.event_time)))
                if name == step:
                    found.append(Attempt(started.attempt, at, _at(event.event_time)))
        return found


@dataclass(frozen=True)
class Attempt:
    # The attempt that ended the activity (the history keeps only the last one's start).
    last: int
    scheduled_at: datetime
    last_started_at: datetime


def _at(timestamp: Timestamp) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


async def start(
    env: WorkflowEnvironment,
    settings: Settings,
    journey: type[Journey],
    contact_id: str,
    properties: dict[str, Any],
    *,
    key: str | None = None,
) -> WorkflowHandle[Any, EnrollmentResult]:
    """Enroll the contact, as routing does when the journey's trigger event arrives."""
    trigger = Event(
        id=f"evt-{uuid.uuid4().hex[:8]}",
        contact_id=contact_id,
        name=journey.triggers[0],
        properties=properties,
    )
    return await env.client.start_workflow(
        journey.workflow_type(),
        EnrollmentInput(contact_id=contact_id, key=key, trigger=trigger),
        id=workflow_id_for(journey.name, contact_id, key),
        task_queue=settings.task_queue,
        search_attributes=journey_search_attributes(journey, contact_id),
        result_type=EnrollmentResult,
    )


async def finished(handle: WorkflowHandle[Any, EnrollmentResult]) -> Run:
    """Its result and history, time skipped until it ends.

    Wait for one enrollment at a time: each wait on a result unlocks time skipping in the
    test server, and two at once would let it skip time while an activity is running.
    """
    result = await handle.result()
    return Run(result=result, history=await handle.fetch_history())


async def run_journey(
    env: WorkflowEnvironment,
    settings: Settings,
    journey: type[Journey],
    contact_id: str,
    properties: dict[str, Any],
    *,
    key: str | None = None,
) -> Run:
    return await finished(await start(env, settings, journey, contact_id, properties, key=key))


async def messages(database: Database, contact_id: str) -> dict[str, Message]:
    """The contact's message rows by step."""
    async with database.session() as session:
        rows = (
            await session.exec(select(Message).where(col(Message.contact_id) == contact_id))
        ).all()
    return {row.step: row for row in rows}


def utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


# ----- SMS: retries, refusals ----------------------------------------------------------------


async def test_sms_retried_after_a_5xx_is_accepted_once(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    providers.sms_answers = [Reply(500, {"code": 20500, "message": "Internal Server Error"})]
    contact_id = await add_contact(database)

    async with worker(time_env, settings, database, http):
        run = await run_journey(time_env, settings, TextThenTellCrm, contact_id, {"cart": CART})

    rows = await messages(database, contact_id)
    text = rows["text"]
    # Two requests, the same message each time; only the second was accepted.
    refused, accepted = providers.sms
    assert refused.form() == accepted.form()
    assert {r.headers["Idempotency-Key"] for r in providers.sms} == {text.message_id}
    form = accepted.form()
    assert (form["To"], form["From"]) == (PHONE_E164, SMS_FROM)
    assert form["Body"].startswith(
        "Acme Outfitters: your cart with the Walnut desk is still waiting."
    )
    assert "https://shop.example.com/cart/cart-7" in form["Body"]
    assert (text.status, text.reason, text.attempts) == ("sent", None, 2)
    assert (text.channel, text.to_address, text.provider_message_id) == (
        "sms",
        PHONE_E164,
        SMS_SID,
    )
    # Temporal retried the activity, after the retry policy's backoff.
    (attempt,) = run.attempts("text")
    assert attempt.last == 2
    backoff = attempt.last_started_at - attempt.scheduled_at
    assert timedelta(seconds=1) <= backoff < timedelta(seconds=30)
    assert run.result.status == "completed"
    assert run.outcomes == [("text", "sent"), ("pause", "waited"), ("tell_crm", "sent")]


async def test_sms_throttled_with_retry_after_waits_that_long_then_is_accepted_once(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    providers.sms_answers = [
        Reply(429, {"code": 20429, "message": "Too Many Requests"}, headers={"Retry-After": "30"})
    ]
    contact_id = await add_contact(database)

    async with worker(time_env, settings, database, http):
        run = await run_journey(time_env, settings, TextThenTellCrm, contact_id, {"cart": CART})

    text = (await messages(database, contact_id))["text"]
    assert len(providers.sms) == 2
    assert (text.status, text.reason, text.attempts) == ("sent", None, 2)
    # The retry came no sooner than the provider asked, in the server's (skipped) time.
    (attempt,) = run.attempts("text")
    assert attempt.last == 2
    waited = attempt.last_started_at - attempt.scheduled_at
    assert timedelta(seconds=30) <= waited < timedelta(seconds=60)
    assert run.outcomes == [("text", "sent"), ("pause", "waited"), ("tell_crm", "sent")]


async def test_invalid_number_is_failed_not_retried_and_the_journey_goes_on(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    contact_id = await add_contact(database, phone=INVALID_NUMBER)

    async with worker(time_env, settings, database, http):
        run = await run_journey(time_env, settings, TextThenTellCrm, contact_id, {"cart": CART})

    rows = await messages(database, contact_id)
    assert len(providers.sms) == 1
    assert (rows["text"].status, rows["text"].reason, rows["text"].attempts) == (
        "failed",
        # The provider's words, without the number it quotes (journeyman.redaction).
        "PermanentSendFailure: sms provider 400: 21211 The 'To' number [phone] "
        "is not a valid phone number.",
        1,
    )
    (attempt,) = run.attempts("text")
    assert attempt.last == 1
    # The journey went on: its next steps ran and it completed.
    assert run.result.status == "completed"
    assert run.outcomes == [
        ("text", "failed: PermanentSendFailure"),
        ("pause", "waited"),
        ("tell_crm", "sent"),
    ]
    assert (rows["tell_crm"].status, len(providers.webhooks)) == ("sent", 1)


async def test_a_send_temporal_gives_up_on_is_recorded_failed_and_frees_its_cap_slot(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    # A provider out of quota until after the send's day of retries: Temporal stops retrying.
    # (A day of 5xx ends the same way, after some 300 attempts.)
    tomorrow = str(int(timedelta(hours=25).total_seconds()))
    providers.sms_answers = [
        Reply(429, {"code": 20429, "message": "Daily limit reached"}, {"Retry-After": tomorrow})
    ]
    contact_id = await add_contact(database)

    async with worker(time_env, settings, database, http):
        run, offer = await text_and_offer(time_env, settings, contact_id, on_cap="skip")

    rows = await messages(database, contact_id)
    assert run.result.status == "completed"
    assert run.outcomes == [
        ("text", "failed: ProviderThrottled"),
        ("pause", "waited"),
        ("tell_crm", "sent"),
    ]
    # The message log says what the journey says: failed, with the provider's words; not
    # `retrying`, as if it might still go out.
    assert (rows["text"].status, rows["text"].reason, rows["text"].attempts) == (
        "failed",
        "ProviderThrottled: sms provider 429: 20429 Daily limit reached",
        1,
    )
    # So it holds no slot under the caps: another journey's SMS ten minutes later goes out.
    assert offer.outcomes == [("browse", "waited"), ("offer", "sent")]
    assert len(providers.sms) == 2


# ----- SMS: consent and caps -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "status", "reason", "texts"),
    [("marketing", "suppressed", "unsubscribed", 0), ("transactional", "sent", None, 1)],
)
async def test_sms_without_sms_consent_goes_only_when_transactional(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
    category: str,
    status: str,
    reason: str | None,
    texts: int,
) -> None:
    contact_id = await add_contact(database, sms_consent=False)

    async with worker(time_env, settings, database, http):
        run = await run_journey(
            time_env, settings, TextThenTellCrm, contact_id, {"cart": CART, "category": category}
        )

    text = (await messages(database, contact_id))["text"]
    assert len(providers.sms) == texts
    assert (text.status, text.reason, text.category) == (status, reason, category)
    assert run.outcomes == [
        ("text", f"{status}: {reason}" if reason else status),
        ("pause", "waited"),
        ("tell_crm", "sent"),
    ]
    assert run.result.status == "completed"


async def text_and_offer(
    env: WorkflowEnvironment, settings: Settings, contact_id: str, on_cap: str
) -> tuple[Run, Run]:
    """Two journeys at once: the text goes at once, the other's offer ten minutes later."""
    text = await start(env, settings, TextThenTellCrm, contact_id, {"cart": CART})
    offer = await start(env, settings, OfferByText, contact_id, {"cart": CART, "on_cap": on_cap})
    return await finished(text), await finished(offer)


async def test_a_second_marketing_sms_the_same_day_is_capped_across_journeys(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    contact_id = await add_contact(database)

    async with worker(time_env, settings, database, http):
        text, offer = await text_and_offer(time_env, settings, contact_id, on_cap="skip")

    rows = await messages(database, contact_id)
    assert text.outcomes[0] == ("text", "sent")
    assert offer.outcomes == [("browse", "waited"), ("offer", "suppressed: frequency_cap")]
    assert (rows["offer"].status, rows["offer"].reason) == ("suppressed", "frequency_cap")
    (sms,) = providers.sms
    assert sms.headers["Idempotency-Key"] == rows["text"].message_id


async def test_a_capped_sms_deferred_goes_out_once_the_window_frees(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    contact_id = await add_contact(database)

    async with worker(time_env, settings, database, http):
        text, offer = await text_and_offer(time_env, settings, contact_id, on_cap="defer")

    rows = await messages(database, contact_id)
    assert text.outcomes[0] == ("text", "sent")
    assert offer.outcomes == [("browse", "waited"), ("offer", "sent")]
    assert [sms.headers["Idempotency-Key"] for sms in providers.sms] == [
        rows["text"].message_id,
        rows["offer"].message_id,
    ]
    # Held back ten minutes after the text, asked again (same message id) once the text's
    # slot left the 24 h window, in skipped time; it took its slot then.
    held, sent = offer.attempts("offer")
    texted_at = utc(rows["text"].created_at)
    assert held.scheduled_at - texted_at < timedelta(hours=1)
    assert sent.scheduled_at >= texted_at + timedelta(hours=24)
    assert utc(rows["offer"].created_at) >= texted_at + timedelta(hours=24)
    assert (rows["offer"].status, rows["offer"].attempts) == ("sent", 1)


# ----- push and webhook ----------------------------------------------------------------------


async def test_push_and_a_signed_webhook_are_received_as_their_apis_expect(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
) -> None:
    contact_id = await add_contact(
        database, email="ada@example.com", attributes={"push_token": DEVICE_TOKEN}
    )

    async with worker(time_env, settings, database, http):
        run = await run_journey(time_env, settings, PushThenNotify, contact_id, ORDER)

    rows = await messages(database, contact_id)
    push, hook = rows["thank_you"], rows["notify_crm"]
    assert run.result.status == "completed"
    assert run.outcomes == [("thank_you", "sent"), ("notify_crm", "sent")]

    (pushed,) = providers.pushes
    assert pushed.json() == {
        "to": DEVICE_TOKEN,
        "title": "Thank you for your order A-1001",
        "body": pushed.json()["body"],
        "data": {
            "message_id": push.message_id,
            "journey": PushThenNotify.name,
            "step": "thank_you",
        },
    }
    assert "Your Trail Runner 2 will be on the way soon." in pushed.json()["body"]
    assert (push.status, push.channel, push.to_address, push.provider_message_id) == (
        "sent",
        "push",
        DEVICE_TOKEN,
        PUSH_ID,
    )
    assert push.subject == "Thank you for your order A-1001"

    (hooked,) = providers.webhooks
    # The receiver accepted it only after verifying the signature; check it here too.
    assert verify_webhook_signature(
        WEBHOOK_SECRET,
        hooked.headers[TIMESTAMP_HEADER],
        hooked.body,
        hooked.headers[SIGNATURE_HEADER],
    )
    assert not verify_webhook_signature(
        "another-secret",
        hooked.headers[TIMESTAMP_HEADER],
        hooked.body,
        hooked.headers[SIGNATURE_HEADER],
    )
    body = hooked.json()
    assert (body["message_id"], body["journey"], body["step"]) == (
        hook.message_id,
        PushThenNotify.name,
        "notify_crm",
    )
    assert body["payload"] == {"order_id": "A-1001"}
    assert body["contact"]["contact_id"] == contact_id
    assert body["contact"]["consent"] == {"email": True, "sms": True, "push": True}
    assert (body["event"]["name"], body["event"]["properties"]) == ("go", ORDER)
    assert hooked.headers["Idempotency-Key"] == hook.message_id
    assert (hook.status, hook.channel, hook.category, hook.to_address) == (
        "sent",
        "webhook",
        "transactional",
        f"{providers.url}{WEBHOOK_PATH}",
    )


# ----- abandoned_cart's SMS second reminder --------------------------------------------------


def contact_in(variant: str) -> str:
    """A fresh contact id the second reminder's split assigns to `variant`."""
    prefix = f"c-{variant}-{uuid.uuid4().hex[:8]}"
    for n in itertools.count():
        contact_id = f"{prefix}-{n}"
        drawn = assign_variant(
            contact_id, AbandonedCart.name, "second_reminder_test", {"A": 50, "B": 50}, 10
        )
        if drawn == variant:
            return contact_id
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("variant", "with_coupon"), [("A", True), ("B", False)])
async def test_abandoned_cart_texts_the_second_reminder_to_an_sms_only_contact(
    time_env: WorkflowEnvironment,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    providers: Providers,
    sink: SmtpSink,
    variant: str,
    with_coupon: bool,
) -> None:
    contact_id = await add_contact(
        database,
        contact_in(variant),
        email="ada@example.com",
        email_consent=False,
        sms_consent=True,
    )

    async with worker(time_env, settings, database, http):
        run = await run_journey(
            time_env,
            settings,
            AbandonedCart,
            contact_id,
            {**CART, "coupon": "COMEBACK10"},
            key="cart-7",
        )

    rows = await messages(database, contact_id)
    assert run.result.status == "completed"
    assert run.outcomes == [
        ("grace_period", "waited"),
        ("first_reminder", "suppressed: unsubscribed"),
        ("order_window", "waited"),
        ("second_reminder_test", f"variant {variant}"),
        ("choose_channel", "read"),
        ("second_reminder", "sent"),
        ("cool_down", "waited"),
    ]
    first, second = rows["first_reminder"], rows["second_reminder"]
    assert (first.channel, first.status, first.reason) == ("email", "suppressed", "unsubscribed")
    assert sink.messages == []
    assert (second.channel, second.status, second.to_address) == ("sms", "sent", PHONE_E164)
    (text,) = providers.sms
    body = text.form()["Body"]
    assert text.headers["Idempotency-Key"] == second.message_id
    assert "Walnut desk" in body and "https://shop.example.com/cart/cart-7" in body
    assert ("Use code COMEBACK10 at checkout." in body) is with_coupon
