"""The sales email follows the journey sends' rule, against a real SMTP server (the sink).

An attempt that dies mid-send (its database connection ended, as PostgreSQL ends a dead
client's) leaves its claim `sending` and unlocked: the next attempt sends it again, once,
with the same Message-ID. An attempt that is alive holds its claim locked: a concurrent one
waits for its outcome (or asks Temporal to retry later) and never sends too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.crm_sync import SalesNotifier
from activities.email import SmtpMailer, message_id_header, sender_domain
from activities.message_claims import ERR_SEND_IN_FLIGHT, MessageClaims
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database, Message
from tests.crm_sync.helpers import qualified_lead
from tests.crm_sync.test_notify_sales import notification
from workflows.contracts import ERR_PERMANENT_SEND, SalesNotification, SalesNotificationResult


class Stalling:
    """A real SMTP mailer that stops mid-send until released: after handing the message
    over (`deliver_first`) or before. Released with an exception, the attempt dies there."""

    def __init__(self, real: SmtpMailer, *, deliver_first: bool) -> None:
        self.real = real
        self.deliver_first = deliver_first
        self.reached = asyncio.Event()
        self.release: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(self, message: EmailMessage) -> None:
        if self.deliver_first:
            await self.real.send(message)
        self.reached.set()
        await self.release
        if not self.deliver_first:
            await self.real.send(message)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def postgres(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("row locks and ended connections are PostgreSQL's")


def _notifier(
    database: Database, settings: Settings, mailer: object, *, outcome_wait: float = 10.0
) -> SalesNotifier:
    """One worker process's notifier: its own claims, so it sees only the database."""
    return SalesNotifier(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=mailer,  # type: ignore[arg-type]
        claims=MessageClaims(database, outcome_wait=outcome_wait),
    )


async def _end_idle_transactions(database: Database) -> list[bool]:
    """End the connection of an attempt inside its SMTP call (idle in the transaction that
    holds its claim locked): what PostgreSQL does when that worker process dies."""
    async with database.session() as session:
        connection = await session.connection()
        ended = await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle in transaction' AND query ILIKE '%FROM messages%FOR UPDATE%'"
            )
        )
        return list(ended.scalars())


async def _row(database: Database, message_id: str) -> Message:
    async with database.session() as session:
        row = (await session.exec(select(Message).where(Message.message_id == message_id))).one()
    return row


async def _stalled_attempt(
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    contact_id: str,
    *,
    deliver_first: bool,
) -> tuple[SalesNotification, SmtpMailer, Stalling, asyncio.Task[SalesNotificationResult]]:
    """A notification for a qualified lead, and an attempt at it started and stalled in its
    SMTP call (see `Stalling`); with the real mailer other attempts use."""
    await qualified_lead(database, contact_id)
    request = notification(contact_id)
    real = SmtpMailer(host=sink.host, port=sink.port, timeout=5)
    stalled = Stalling(real, deliver_first=deliver_first)
    first = asyncio.create_task(
        ActivityEnvironment().run(_notifier(database, settings, stalled).notify_sales, request)
    )
    await asyncio.wait_for(stalled.reached.wait(), 10)
    return request, real, stalled, first


@pytest.mark.usefixtures("postgres")
async def test_a_retry_after_an_attempt_died_mid_send_sends_once_with_the_same_message_id(
    database: Database, settings: Settings, sink: SmtpSink, contact_id: str
) -> None:
    request, real, stalled, first = await _stalled_attempt(
        database, settings, sink, contact_id, deliver_first=True
    )
    message_id = f"{request.notification_id}:sales"
    assert len(sink.messages) == 1  # handed over, but the outcome is not recorded
    assert await _end_idle_transactions(database) == [True]  # ...and then its process died

    retry = await ActivityEnvironment().run(
        _notifier(database, settings, real).notify_sales, request
    )
    assert retry.email == "sent"
    header = message_id_header(message_id, sender_domain(settings.email_from))
    assert [m["Message-ID"] for m in sink.messages] == [header, header]
    row = await _row(database, message_id)
    assert (row.status, row.attempts, row.reason) == ("sent", 2, None)

    # The first attempt, were it to wake, has no connection to record anything on.
    stalled.release.set_exception(ConnectionResetError("its process is gone"))
    with pytest.raises(Exception):  # noqa: B017 - whatever the dead connection raises
        await first
    again = await ActivityEnvironment().run(
        _notifier(database, settings, real).notify_sales, request
    )
    assert again.email == "already_sent"
    assert len(sink.messages) == 2
    assert (await _row(database, message_id)).status == "sent"


@pytest.mark.usefixtures("postgres")
async def test_a_concurrent_attempt_never_sends_the_email_too(
    database: Database, settings: Settings, sink: SmtpSink, contact_id: str
) -> None:
    request, real, stalled, first = await _stalled_attempt(
        database, settings, sink, contact_id, deliver_first=False
    )

    # A duplicate attempt (the first one timed out in Temporal's eyes, but lives on) finds
    # the claim locked: it waits, then hands back to Temporal to retry, sending nothing.
    impatient = _notifier(database, settings, real, outcome_wait=0.5)
    with pytest.raises(ApplicationError) as in_flight:
        await ActivityEnvironment().run(impatient.notify_sales, request)
    assert (in_flight.value.type, in_flight.value.non_retryable) == (ERR_SEND_IN_FLIGHT, False)
    assert sink.messages == []

    # One that waits long enough answers with the first attempt's outcome.
    patient = asyncio.create_task(
        ActivityEnvironment().run(_notifier(database, settings, real).notify_sales, request)
    )
    await asyncio.sleep(0.2)  # let it reach the lock; the assertion holds either way
    stalled.release.set_result(None)
    assert (await first).email == "sent"
    assert (await patient).email == "already_sent"
    assert len(await sink.wait_for(1)) == 1
    row = await _row(database, f"{request.notification_id}:sales")
    assert (row.status, row.attempts) == ("sent", 1)


class Refusing:
    """A mailer whose server refuses the recipient, quoting it, as many servers do."""

    async def send(self, message: EmailMessage) -> None:
        raise ApplicationError(
            f"recipient_refused: 550 5.1.1 <{message['To']}>: mailbox unknown",
            type=ERR_PERMANENT_SEND,
            non_retryable=True,
        )


async def test_a_refusal_is_recorded_without_the_address_it_quotes(
    database: Database, settings: Settings, contact_id: str
) -> None:
    await qualified_lead(database, contact_id)
    request = notification(contact_id)
    result = await ActivityEnvironment().run(
        _notifier(database, settings, Refusing()).notify_sales, request
    )
    row = await _row(database, f"{request.notification_id}:sales")
    expected = "recipient_refused: 550 5.1.1 <[email]>: mailbox unknown"
    assert (row.status, row.reason) == ("failed", f"PermanentSendFailure: {expected}")
    assert result.email == f"failed: {expected}"


@pytest.mark.usefixtures("postgres")
async def test_the_email_takes_the_journey_sends_round_trips(
    database: Database, settings: Settings, sink: SmtpSink, contact_id: str
) -> None:
    """The shared claim code, journey sends' optimised path: the read and the claim in
    autocommit, the send transaction's limits riding on its row lock's statement."""
    await qualified_lead(database, contact_id)
    request = notification(contact_id)
    real = SmtpMailer(host=sink.host, port=sink.port, timeout=5)
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "messages" in statement:
            seen.append((statement, bool(conn.connection.driver_connection.autocommit)))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        result = await ActivityEnvironment().run(
            _notifier(database, settings, real).notify_sales, request
        )
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)

    assert result.email == "sent" and len(sink.messages) == 1
    assert [(sql.split()[0], autocommit) for sql, autocommit in seen] == [
        ("SELECT", True),  # the message row
        ("INSERT", True),  # the claim, committed before the SMTP call
        ("SELECT", False),  # the claim's row lock, held across the call
        ("UPDATE", False),  # the outcome, committed in that same transaction
    ]
    assert "FOR UPDATE" in seen[2][0] and "set_config" in seen[2][0]
