"""What keeps a send cheap: the email serialised once, few database round trips per send.

Each saving keeps its guarantee: the bytes sent are the bytes checked for header injection;
the claim still commits before the provider call; the send transaction's limits are in force
before its row lock is waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from temporalio.testing import ActivityEnvironment

from activities import RenderedEmail, SmtpMailer, build_email
from activities.email import EMAIL_POLICY, wire_bytes
from activities.journey_activities import LOCK_NOT_AVAILABLE
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database

from .conftest import AddContact, make_activities
from .sends import message_row, put_message, send_request

run = ActivityEnvironment().run

RENDERED = RenderedEmail(
    subject="Welcome, Ada",
    text="Hi Ada,\n\nGlad you are here: €5 off.\n",
    html="<p>Hi Ada,</p><p>Glad you are here: €5 off.</p>",
)


def email() -> Any:
    return build_email(
        message_id="journey:welcome_series:c-1:run-1:welcome",
        sender="Acme Outfitters <hello@shop.example.com>",
        recipient="ada@example.com",
        rendered=RENDERED,
        domain="shop.example.com",
        date=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        unsubscribe_url="https://shop.example.com/u/token",
    )


def test_each_header_class_is_made_once() -> None:
    registry: Any = EMAIL_POLICY.header_factory
    assert registry["Subject"] is registry["subject"]
    assert registry["To"] is not registry["Subject"]
    first, second = email(), email()
    assert type(first["To"]) is type(second["To"])


def test_the_wire_bytes_are_made_once_and_again_after_any_change() -> None:
    message = email()

    wire = wire_bytes(message)
    assert wire_bytes(message) is wire  # serialised in build_email, reused by the mailer

    message.replace_header("Subject", "Changed subject")
    changed = wire_bytes(message)
    assert b"Subject: Changed subject" in changed and changed is not wire

    plain = message.get_body(("plain",))
    assert plain is not None
    plain.set_content("Another body\n")  # a part changed, the parent's headers did not
    parsed = BytesParser(policy=policy.default).parsebytes(wire_bytes(message))
    body = parsed.get_body(("plain",))
    assert body is not None and body.get_content().split() == ["Another", "body"]


def test_the_wire_bytes_are_what_the_email_package_writes() -> None:
    message = email()
    wire = wire_bytes(message)
    # The boundary was set by that first serialisation, so a fresh one writes the same.
    assert message.as_bytes(policy=EMAIL_POLICY) == wire
    assert (
        wire.isascii() and b"\r\nList-Unsubscribe: <https://shop.example.com/u/token>\r\n" in wire
    )


async def test_the_mailer_sends_the_bytes_built_before_the_claim(sink: SmtpSink) -> None:
    message = email()
    built = wire_bytes(message)

    await SmtpMailer(host=sink.host, port=sink.port, timeout=5).send(message)

    [received] = sink.messages
    assert received.get_boundary() == message.get_boundary()
    assert (
        received.as_bytes(policy=EMAIL_POLICY).split(b"\r\n\r\n", 1)[1]
        == built.split(b"\r\n\r\n", 1)[1]
    )


# ----- database round trips ------------------------------------------------------------------


@pytest.fixture
def postgres(database: Database) -> Database:
    if database.dialect != "postgresql":
        pytest.skip("round trips and row locks are PostgreSQL's")
    return database


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, bool]]]:
    """Each statement the engine runs: its text, and whether its connection was in autocommit."""
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement, bool(conn.connection.driver_connection.autocommit)))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_a_send_reads_claims_and_records_in_five_statements(
    postgres: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    """No caps: two reads and the claim in autocommit (no BEGIN, COMMIT or ROLLBACK round
    trips), then the locked call's transaction: the lock, with the limits, and the outcome."""
    settings = settings.model_copy(update={"frequency_caps": ""})
    activities = make_activities(postgres, settings)
    request = send_request(await add_contact())

    with statements(postgres) as seen:
        result = await run(activities.send_message, request)

    assert result.status == "sent" and len(sink.messages) == 1
    verbs = [(sql.split()[0], autocommit) for sql, autocommit in seen]
    assert verbs == [
        ("SELECT", True),  # the message row
        ("SELECT", True),  # the contact
        ("INSERT", True),  # the claim, committed before the provider call
        ("SELECT", False),  # the claim's row lock, held across the call
        ("UPDATE", False),  # the outcome, committed in that same transaction
    ]
    lock = seen[3][0]
    assert "FOR UPDATE" in lock and "set_config" in lock and "set_config" not in seen[2][0]


async def test_with_caps_the_count_and_the_claim_share_one_transaction(
    postgres: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    settings = settings.model_copy(update={"frequency_caps": "email:5/24h"})
    activities = make_activities(postgres, settings)
    request = send_request(await add_contact())

    with statements(postgres) as seen:
        result = await run(activities.send_message, request)

    assert result.status == "sent"
    claim = [autocommit for sql, autocommit in seen[2:5]]
    assert [sql.split()[0] for sql, _ in seen[2:5]] == ["SELECT", "SELECT", "INSERT"]
    assert "FOR UPDATE" in seen[2][0] and claim == [False, False, False]


async def test_the_lock_waits_no_longer_than_its_lock_timeout(
    postgres: Database, settings: Settings, database_url: str, add_contact: AddContact
) -> None:
    """The limits ride on the lock statement itself: they must be in force for its wait."""
    activities = make_activities(postgres, settings)
    request = send_request(await add_contact())
    await put_message(postgres, request, status="sending", attempts=1)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(dsn) as holder:
        await holder.execute(
            "SELECT 1 FROM messages WHERE message_id = %s FOR UPDATE", (request.message_id,)
        )
        async with postgres.session() as session:
            began = time.monotonic()
            with pytest.raises(OperationalError) as err:
                # Without the limits in force the wait would be endless: fail in 20 s instead.
                await asyncio.wait_for(
                    activities._lock_claim(session, request.message_id, 1, lock_timeout=0.3), 20
                )
            waited = time.monotonic() - began
        await holder.rollback()
    assert getattr(err.value.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
    assert waited < 10, waited  # not the 30 s default, nor forever


async def test_the_send_limits_hold_for_the_transaction_only(
    postgres: Database, settings: Settings, add_contact: AddContact
) -> None:
    activities = make_activities(postgres, settings)
    request = send_request(await add_contact())
    await put_message(postgres, request, status="sending", attempts=1)
    async with postgres.session() as session:
        held = await activities._lock_claim(session, request.message_id, 1)
        assert held is not None
        inside = [
            (await session.exec(text(f"SHOW {name}"))).scalar()  # type: ignore[call-overload]
            for name in ("lock_timeout", "idle_in_transaction_session_timeout")
        ]
        await session.rollback()
        after = (await session.exec(text("SHOW lock_timeout"))).scalar()  # type: ignore[call-overload]
    assert inside == ["30s", "2min"]
    assert after == "0"


async def test_a_retry_after_the_outcome_reads_once_and_sends_nothing(
    postgres: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    activities = make_activities(postgres, settings)
    request = send_request(await add_contact())
    first = await run(activities.send_message, request)

    with statements(postgres) as seen:
        again = await run(activities.send_message, request)

    assert (first.status, again.status) == ("sent", "sent") and len(sink.messages) == 1
    assert [sql.split()[0] for sql, _ in seen] == ["SELECT", "SELECT"]
    row = await message_row(postgres, request.message_id)
    assert row.attempts == 1


async def test_concurrent_sends_all_go_out_once(
    postgres: Database, settings: Settings, sink: SmtpSink, add_contact: AddContact
) -> None:
    """Forty sends at once on the reworked path (autocommit reads and claims, pooled
    connections): every message once, every row sent."""
    activities = make_activities(postgres, settings.model_copy(update={"frequency_caps": ""}))
    requests = [send_request(await add_contact(email=f"p{i}@example.com")) for i in range(40)]

    results = await asyncio.gather(*(run(activities.send_message, r) for r in requests))
    again = await asyncio.gather(*(run(activities.send_message, r) for r in requests))

    assert {r.status for r in [*results, *again]} == {"sent"}
    ids = [m["X-Journeyman-Message-Id"] for m in sink.messages]
    assert sorted(ids) == sorted(r.message_id for r in requests)
