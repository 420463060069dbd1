"""Claim before send: a message goes out once per step, and a dead attempt's message still goes.

The first test is the issue's: a real workflow whose send fails after the SMTP call. Each
send's first attempt really sends over SMTP and records the message, then raises, as a worker
would that crashed before reporting the result. Temporal retries the activity; the retry
finds the message id claimed and sent, and answers from the database. The sink must hold
exactly one email per step.

The others drive `send_message` attempts by hand against PostgreSQL and the SMTP sink: a
claim left `sending` by an attempt that died is sent again with the same Message-ID; a live
attempt holding its claim is never joined by a second send; a claim taken over is not sent by
its first owner as well. tests/chaos does the same with a worker killed by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from sqlalchemy import text
from sqlmodel import col, select
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, SmtpMailer, TemplateRenderer, journey_activities
from activities.email import message_id_header, sender_domain
from activities.lifecycle import LifecycleRecorder
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database, Enrollment, Message
from workflows.contracts import (
    SEND_MESSAGE,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    SendRequest,
    SendResult,
    workflow_id_for,
)
from workflows.post_purchase import PostPurchase
from workflows.runtime import journey_search_attributes

from .conftest import AddContact, RecordingStarter, make_activities
from .samples import ORDER
from .sends import message_row, put_message, send_request

run = ActivityEnvironment().run


class FailsAfterSending(JourneyActivities):
    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        result = await super().send_message(request)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost after the SMTP call succeeded")
        return result


async def test_a_send_retried_after_the_smtp_call_is_not_sent_again(
    time_env: WorkflowEnvironment,
    task_queue: str,
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    add_contact: AddContact,
    renderer: TemplateRenderer,
) -> None:
    contact_id = await add_contact(attributes={"first_name": "Ada"})
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    order = {**ORDER, "order_id": order_id}
    acts = FailsAfterSending(
        database=database,
        settings=settings,
        renderer=renderer,
        mailer=SmtpMailer.from_settings(settings),
        starter=RecordingStarter(),
    )
    workflow_id = workflow_id_for(PostPurchase.name, contact_id, order_id)

    async with Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=[PostPurchase],
        activities=[
            acts.send_message,
            acts.read_contact,
            *LifecycleRecorder(database).activities(),
            acts.start_journey,
        ],
    ):
        handle = await time_env.client.start_workflow(
            PostPurchase.workflow_type(),
            EnrollmentInput(
                contact_id=contact_id,
                key=order_id,
                trigger=Event(
                    id=f"evt-{order_id}",
                    contact_id=contact_id,
                    name="order_placed",
                    properties=order,
                ),
            ),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=journey_search_attributes(PostPurchase, contact_id),
            result_type=EnrollmentResult,
        )
        result = await handle.result()
        history: WorkflowHistory = await handle.fetch_history()

    # Each send really ran twice (history keeps the last attempt of an activity)...
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [2, 2]
    # ...and yet each step's email went out exactly once.
    ids = [m["X-Journeyman-Message-Id"] for m in sink.messages]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert [m["Subject"] for m in sink.messages] == [
        f"Thank you for your order {order_id}",
        "How is the Trail Runner 2 working out?",
    ]
    assert [(s.name, s.outcome) for s in result.steps] == [
        ("thank_you", "sent"),
        ("settle_in", "waited"),
        ("review_request", "sent"),
    ]
    async with database.session() as session:
        messages = (
            await session.exec(select(Message).where(col(Message.workflow_id) == workflow_id))
        ).all()
        enrollment = (
            await session.exec(select(Enrollment).where(col(Enrollment.workflow_id) == workflow_id))
        ).one()
    assert sorted((m.step, m.status, m.attempts) for m in messages) == [
        ("review_request", "sent", 1),
        ("thank_you", "sent", 1),
    ]
    assert {m.message_id for m in messages} == set(ids)
    assert (enrollment.status, enrollment.current_step) == ("completed", "review_request")


# ----- attempts by hand: dead, live and overtaken claims -----------------------------------


class GatedMailer:
    """Delivers to the real sink, but only once `go` is set; `calls` says it was reached.

    With `deliver_first`, it hands the message over first and then waits (a worker killed
    right after the SMTP server accepted the message). With `dead` set when released, it
    raises instead of going on: the process it stands for no longer exists."""

    def __init__(self, settings: Settings, *, deliver_first: bool = False) -> None:
        self.smtp = SmtpMailer.from_settings(settings)
        self.deliver_first = deliver_first
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.dead = False
        self.calls = 0

    async def send(self, message: EmailMessage) -> None:
        self.calls += 1
        if self.deliver_first:
            await self.smtp.send(message)
        self.reached.set()
        await self.go.wait()
        if self.dead:
            raise RuntimeError("this attempt's process was killed")
        if not self.deliver_first:
            await self.smtp.send(message)


def require_postgres(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite relies on one attempt at a time)")


# The backend of an attempt inside its provider call: idle in the transaction that holds its
# claim locked (`SELECT ... FROM messages ... FOR UPDATE` is its last statement).
TERMINATE_LOCK_HOLDER = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND state = 'idle in transaction' AND query ILIKE '%FROM messages%FOR UPDATE%'"
)


@contextlib.asynccontextmanager
async def killed_mid_send(
    database: Database, settings: Settings, request: SendRequest, *, deliver_first: bool = False
) -> AsyncIterator[None]:
    """An attempt that claims, reaches the provider call, and dies there.

    Death as PostgreSQL sees a SIGKILLed worker: its connection ends, which rolls back the
    transaction holding the claim and frees the row. The attempt's coroutine (the process
    that no longer exists) is released, failing, when the block ends."""
    require_postgres(database)
    mailer = GatedMailer(settings, deliver_first=deliver_first)
    attempt = asyncio.create_task(
        run(make_activities(database, settings, mailer=mailer).send_message, request)
    )
    await asyncio.wait_for(mailer.reached.wait(), 10)
    async with database.session() as session:
        connection = await session.connection()
        killed = list((await connection.execute(TERMINATE_LOCK_HOLDER)).scalars())
    assert killed == [True], killed
    try:
        yield
    finally:
        mailer.dead = True
        mailer.go.set()
        with contextlib.suppress(Exception):
            await attempt


async def test_a_claim_left_by_a_dead_attempt_is_sent_with_the_same_message_id(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact())
    async with killed_mid_send(database, settings, request):
        row = await message_row(database, request.message_id)
        assert (row.status, row.attempts) == ("sending", 1)
        assert sink.messages == []

        result = await run(make_activities(database, settings).send_message, request)

    assert result.status == "sent"
    [received] = sink.messages
    # The Message-ID is a function of the message id: the one the dead attempt would have sent.
    domain = sender_domain(settings.email_from)
    assert received["Message-ID"] == message_id_header(request.message_id, domain)
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, None)
    assert row.provider_message_id == received["Message-ID"]
    # Settled: yet another attempt answers from the row and sends nothing.
    assert (await run(make_activities(database, settings).send_message, request)).status == "sent"
    assert len(sink.messages) == 1


async def test_a_claim_left_sending_and_unlocked_is_taken_over(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    # The row as a dead attempt leaves it, on either database (SQLite has no lock to check:
    # there Temporal's one attempt at a time is what makes the row's attempt a dead one).
    request = send_request(await add_contact())
    await put_message(database, request, status="sending", attempts=1)

    result = await run(activities.send_message, request)

    assert result.status == "sent"
    [received] = sink.messages
    assert received["X-Journeyman-Message-Id"] == request.message_id
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_the_remaining_window_repeats_the_same_message_id_never_a_new_one(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # Killed after the SMTP server accepted the message, before `sent` was committed: the
    # receiver sees the same Message-ID twice (and can drop the second), never two messages.
    request = send_request(await add_contact())
    async with killed_mid_send(database, settings, request, deliver_first=True):
        result = await run(make_activities(database, settings).send_message, request)

    assert result.status == "sent"
    first, second = sink.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert (await message_row(database, request.message_id)).attempts == 2


async def test_a_live_attempt_is_never_joined_by_a_second_send(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    require_postgres(database)
    request = send_request(await add_contact())
    slow = GatedMailer(settings)
    first = asyncio.create_task(
        run(make_activities(database, settings, mailer=slow).send_message, request)
    )
    await asyncio.wait_for(slow.reached.wait(), 10)
    other = GatedMailer(settings)
    other.go.set()

    # The first attempt holds its claim locked inside the provider call: the second waits.
    second = asyncio.create_task(
        run(make_activities(database, settings, mailer=other).send_message, request)
    )
    await asyncio.sleep(0.5)
    assert not second.done()
    slow.go.set()

    assert (await first).status == "sent"
    assert (await second).status == "sent"
    assert other.calls == 0
    assert len(sink.messages) == 1
    assert (await message_row(database, request.message_id)).attempts == 1


async def test_a_live_attempt_past_the_wait_makes_the_other_retry_later(
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    add_contact: AddContact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_postgres(database)
    monkeypatch.setattr(journey_activities, "OUTCOME_WAIT_SECONDS", 0.5)
    request = send_request(await add_contact())
    slow = GatedMailer(settings)
    first = asyncio.create_task(
        run(make_activities(database, settings, mailer=slow).send_message, request)
    )
    await asyncio.wait_for(slow.reached.wait(), 10)
    other = GatedMailer(settings)
    other.go.set()

    with pytest.raises(ApplicationError) as err:
        await run(make_activities(database, settings, mailer=other).send_message, request)

    assert err.value.type == journey_activities.ERR_SEND_IN_FLIGHT
    assert not err.value.non_retryable
    slow.go.set()
    assert (await first).status == "sent"
    assert other.calls == 0 and len(sink.messages) == 1
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("sent", 1)


class PausesBeforeItsLock(JourneyActivities):
    """An attempt that stalls between committing its claim and locking it for the call."""

    paused = asyncio.Event()
    resume = asyncio.Event()

    async def _lock_claim(self, *args: object, **kwargs: object) -> Message | None:
        if not kwargs.get("nowait"):  # the lock taken for the provider call
            type(self).paused.set()
            await type(self).resume.wait()
        return await super()._lock_claim(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_claim_taken_over_is_not_sent_by_its_first_owner(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    request = send_request(await add_contact())
    PausesBeforeItsLock.paused = asyncio.Event()
    PausesBeforeItsLock.resume = asyncio.Event()
    owner_mailer = GatedMailer(settings)
    owner_mailer.go.set()
    owner = PausesBeforeItsLock(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=owner_mailer,
        starter=RecordingStarter(),
    )
    stalled = asyncio.create_task(run(owner.send_message, request))
    await asyncio.wait_for(PausesBeforeItsLock.paused.wait(), 10)

    # Temporal gave up on the stalled attempt and started another: it takes the claim over.
    taken_over = await run(make_activities(database, settings).send_message, request)
    PausesBeforeItsLock.resume.set()

    assert taken_over.status == "sent"
    assert (await stalled).status == "sent"  # the new owner's outcome, not a second send
    assert owner_mailer.calls == 0
    assert len(sink.messages) == 1
    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_given_up_with_a_claim_left_mid_send_records_it_uncertain(
    activities: JourneyActivities, database: Database, sink: SmtpSink, add_contact: AddContact
) -> None:
    # No attempt is left to take it over: the log says what is known, and nothing is sent.
    request = send_request(await add_contact())
    await put_message(database, request, status="sending", attempts=1)

    result = await run(activities.send_message, dataclasses.replace(request, give_up="timeout"))

    assert (result.status, result.reason) == ("failed", "uncertain_delivery")
    assert sink.messages == []


async def test_a_send_cancelled_mid_call_still_records_its_outcome(
    database: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    # Temporal cancels an attempt it timed out (or whose enrollment ended) without killing
    # the process: the call in progress finishes and `sent` is committed before the
    # cancellation is honoured, so the next attempt answers from the row, sending nothing.
    request = send_request(await add_contact())
    mailer = GatedMailer(settings, deliver_first=True)
    attempt = asyncio.create_task(
        run(make_activities(database, settings, mailer=mailer).send_message, request)
    )
    await asyncio.wait_for(mailer.reached.wait(), 10)
    attempt.cancel()
    await asyncio.sleep(0.1)
    assert not attempt.done()  # still finishing the call
    mailer.go.set()

    with pytest.raises(asyncio.CancelledError):
        await attempt

    row = await message_row(database, request.message_id)
    assert (row.status, row.attempts) == ("sent", 1)
    assert (await run(make_activities(database, settings).send_message, request)).status == "sent"
    assert len(sink.messages) == 1
