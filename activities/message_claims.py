"""The claim rule of every message send: journey sends and the sales email alike.

A send claims its message id as a `sending` row (`attempts` names the claim), then makes
the provider call and records its outcome in one transaction holding that row locked
(`SELECT ... FOR UPDATE`). So a `sending` row nobody holds locked belongs to an attempt that
died (PostgreSQL ends a dead client's transaction and its lock), or to one between its
claim and its lock: a later attempt takes it over (`take_over`: `sending` -> `retrying`,
reason `abandoned_mid_send`) and sends again with the same Message-ID, which a receiver
de-duplicates by. A locked row belongs to a live attempt, whose outcome the later one waits
for (`await_outcome`) instead of sending too. The older attempt re-checks under the lock
that the claim is still its own (`call_locked`), so a claim taken over is never sent by its
first owner as well. `activities.journey_activities`' module docstring has the whole
argument; SQLite has no row locks, so there only this process's own calls in progress are
seen, and Temporal running one attempt at a time covers the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Update, func, update
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from persistence import Database, Message

SENDING = "sending"
RETRYING = "retrying"
# The reason on a claim taken over from an attempt that died mid-send.
ABANDONED = "abandoned_mid_send"
# A retryable error: another attempt is sending this message right now, ask again later.
ERR_SEND_IN_FLIGHT = "SendInFlight"
# How long an attempt waits for another live attempt's outcome before Temporal retries it.
OUTCOME_WAIT_SECONDS = 10.0
OUTCOME_POLL_SECONDS = 0.1
# PostgreSQL ends a transaction left idle this long (milliseconds): a send transaction open
# on a host that vanished without closing its connection stops blocking takeovers after it.
# Well above any provider call (the send activity's start-to-close timeout is 60 s).
SEND_TRANSACTION_IDLE_MS = 120_000
LOCK_NOT_AVAILABLE = "55P03"

T = TypeVar("T")
# The provider call: given the session and the locked claim, hand the message over and
# record the outcome on the row (`settle`, which commits the session).
Call = Callable[[AsyncSession, Message], Awaitable[T]]


class MessageClaims:
    """Take-overs, waits and locked provider calls for the claimed message rows of a database.

    One per worker process and sender: `_in_call` is what this process has in flight.
    """

    def __init__(self, database: Database, *, outcome_wait: float = OUTCOME_WAIT_SECONDS) -> None:
        self.database = database
        self.outcome_wait = outcome_wait
        # Message ids whose provider call is in progress in this process.
        self._in_call: set[str] = set()

    async def take_over(self, row: Message) -> Message:
        """A `sending` row found at the start of an attempt: hand it back if its attempt died.

        Its attempt is alive only while it holds the row locked (see the module docstring), or
        is in its provider call in this very process (the check SQLite has): then this one
        waits for that attempt's outcome. Otherwise the claim becomes `retrying` again, which
        this attempt then claims like any retry.
        """
        if row.message_id in self._in_call:
            return await self.await_outcome(row.message_id)
        async with self.database.session() as session:
            try:
                held = await self._lock_claim(session, row.message_id, row.attempts, nowait=True)
            except OperationalError as err:
                if not _lock_not_available(err):
                    raise
                held = None
                busy = True
            else:
                busy = False
            if held is not None:
                released = await session.exec(
                    update(Message)
                    .where(
                        col(Message.message_id) == row.message_id,
                        col(Message.status) == SENDING,
                        col(Message.attempts) == row.attempts,
                    )
                    .values(status=RETRYING, reason=ABANDONED)
                )
                if released.rowcount != 1:  # SQLite: changed since we read it
                    held = None
            if held is None:
                await session.rollback()
                if busy:
                    activity.logger.info("Message %s is being sent; waiting", row.message_id)
                # Either way someone else has it: its outcome is this attempt's answer.
                return await self.await_outcome(row.message_id)
            activity.logger.warning(
                "Message %s was left mid-send by a dead attempt; sending it again with the "
                "same Message-ID",
                row.message_id,
            )
            await session.commit()
        row.status = RETRYING
        row.reason = ABANDONED
        return row

    async def await_outcome(self, message_id: str) -> Message:
        """The final row of a message another attempt is sending; retryable if it takes long.

        Waiting on the row lock returns as soon as a live sender commits; a row that stays
        `sending` unlocked (its sender died, or has yet to take its lock) is polled until
        `outcome_wait` has passed, then Temporal's next attempt sorts it out.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outcome_wait
        while True:
            row: Message | None = None
            async with self.database.session() as session:
                remaining = max(deadline - loop.time(), 0.001)
                try:
                    await self._send_transaction(session, lock_timeout=remaining)
                    row = (
                        await session.exec(
                            select(Message)
                            .where(col(Message.message_id) == message_id)
                            .with_for_update()
                        )
                    ).first()
                except OperationalError as err:
                    if not _lock_not_available(err):
                        raise
                if row is not None:
                    session.expunge(row)  # read after the rollback, which would expire it
                await session.rollback()
            if row is not None and row.status not in (SENDING, RETRYING):
                return row
            if (row is not None and row.status == RETRYING) or loop.time() >= deadline:
                # Handed back for a retry, or still in flight: Temporal retries this attempt.
                raise ApplicationError(
                    f"message {message_id} is {row.status if row else 'gone'} "
                    "in another attempt; retrying",
                    type=ERR_SEND_IN_FLIGHT,
                )
            await asyncio.sleep(OUTCOME_POLL_SECONDS)

    async def call_locked(self, message_id: str, attempts: int, call: Call[T]) -> T | Message:
        """Run the provider call `call` on the claim `attempts` of `message_id`, row locked.

        Returns what `call` returns; or, when a later attempt took the claim over first, that
        attempt's final row (this one sends nothing). The outcome commits in the transaction
        holding the lock: if the process dies before it does, PostgreSQL rolls it back and
        the row stays `sending`, unlocked, for the next attempt to take over.
        """
        async with self.database.session() as session:
            try:
                held = await self._lock_claim(session, message_id, attempts)
            except OperationalError as err:
                if not _lock_not_available(err):
                    raise
                held = None
            if held is None:
                # A later attempt took this claim over while we were between claim and lock:
                # it sends, we must not.
                await session.rollback()
                return await self.await_outcome(message_id)
            # Once the provider may have the message, the call and the recording of its outcome
            # run to the end even if the activity is cancelled meanwhile (Temporal timed the
            # attempt out, or the enrollment ended): a cancellation between the provider's
            # acceptance and our commit would have the next attempt send it again. The next
            # attempt waits for our lock meanwhile; the cancellation is honoured afterwards.
            work = asyncio.ensure_future(call(session, held))
            self._in_call.add(message_id)
            work.add_done_callback(lambda _: self._in_call.discard(message_id))
            cancelled = False
            while True:
                try:
                    result = await asyncio.shield(work)
                except asyncio.CancelledError:
                    if work.done():
                        raise
                    cancelled = True
                    continue
                break
        if cancelled:
            raise asyncio.CancelledError
        return result

    async def one_statement_each(self, session: AsyncSession) -> None:
        """Run `session`'s statements in autocommit: each its own transaction.

        For sessions whose statements need no transaction together (independent reads, one
        write): PostgreSQL then takes no BEGIN, nor a COMMIT or ROLLBACK at the end, which
        are a round trip each with psycopg. Must come before the session's first statement.
        """
        if self.database.dialect == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})

    async def _send_transaction(
        self, session: AsyncSession, *, lock_timeout: float | None = None
    ) -> None:
        """PostgreSQL limits for a transaction that may hold a message row across a call."""
        if self.database.dialect != "postgresql":
            return
        await session.exec(
            select(
                *(
                    func.set_config(name, value, True)
                    for name, value in _send_limits(lock_timeout).items()
                )
            )
        )

    async def _lock_claim(
        self,
        session: AsyncSession,
        message_id: str,
        attempts: int,
        *,
        nowait: bool = False,
        lock_timeout: float | None = None,
    ) -> Message | None:
        """Lock the row if it is still the `sending` claim numbered `attempts`.

        On PostgreSQL the statement also sets the send transaction's limits (what
        `_send_transaction` sets), saving a round trip per send: `set_config` in the WHERE
        clause runs in the scan, on the row found, before the row is locked (the lock is taken
        above the scan), so `lock_timeout` bounds the wait for this very lock. No row found
        means no lock and no transaction left open, so nothing to limit.
        """
        conditions = [
            col(Message.message_id) == message_id,
            col(Message.status) == SENDING,
            col(Message.attempts) == attempts,
        ]
        if self.database.dialect == "postgresql":
            conditions += [
                func.set_config(name, value, True).is_not(None)
                for name, value in _send_limits(lock_timeout).items()
            ]
        statement = select(Message).where(*conditions).with_for_update(nowait=nowait)
        return (await session.exec(statement)).first()


def reclaim(message_id: str, previous: Message, **fields: Any) -> Update:
    """The claim of a `retrying` row this attempt read: it moves on only if nobody claimed
    it since (its `attempts` is still `previous`'), and becomes claim `previous.attempts + 1`.
    """
    return (
        update(Message)
        .where(
            col(Message.message_id) == message_id,
            col(Message.status) == RETRYING,
            col(Message.attempts) == previous.attempts,
        )
        .values(attempts=previous.attempts + 1, **fields)
    )


async def settle(session: AsyncSession, row: Message, **values: Any) -> None:
    """Record a send's outcome on the row it holds locked, and end the transaction."""
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    await session.commit()


def _send_limits(lock_timeout: float | None) -> dict[str, str]:
    """The PostgreSQL settings of a transaction that may hold a message row across a call."""
    return {
        "idle_in_transaction_session_timeout": str(SEND_TRANSACTION_IDLE_MS),
        "lock_timeout": str(int((lock_timeout or 30.0) * 1000)),
    }


def _lock_not_available(err: OperationalError) -> bool:
    """PostgreSQL refused a row lock (NOWAIT, or `lock_timeout` ran out)."""
    return getattr(err.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
