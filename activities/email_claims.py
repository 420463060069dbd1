"""A claimed message's provider call held under its row lock, for sends outside the journeys.

The same rule as journey sends (`activities.journey_activities`, whose module docstring has
the whole argument), for `notify_sales`'s internal email: the call and the recording of its
outcome run in one transaction holding the claimed row locked (`SELECT ... FOR UPDATE`). So
a `sending` row nobody holds locked belongs to an attempt that died (PostgreSQL ends a dead
client's transaction and its lock), and a later attempt takes it over and sends again with
the same Message-ID, which a receiver de-duplicates by; a locked row belongs to a live
attempt, whose outcome the later one waits for instead of sending too. The older attempt
re-checks under the lock that the claim is still its own (`attempts`), so a claim taken over
is never sent by its first owner as well.

A minimal copy of the journey send's rule rather than a shared helper: that one's pieces are
methods of `JourneyActivities`. On SQLite (no row locks) only this process's own calls in
progress are seen; Temporal running one attempt at a time covers the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import func, update
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.journey_activities import (
    ABANDONED,
    ERR_SEND_IN_FLIGHT,
    LOCK_NOT_AVAILABLE,
    OUTCOME_POLL_SECONDS,
    OUTCOME_WAIT_SECONDS,
    RETRYING,
    SEND_TRANSACTION_IDLE_MS,
    SENDING,
)
from persistence import Database, Message

T = TypeVar("T")
# The call: given the session and the locked row, hand the message over and record the
# outcome on the row (committing the session).
Call = Callable[[AsyncSession, Message], Awaitable[T]]


class EmailClaims:
    """Take-overs, waits and locked calls for claimed message rows of one database."""

    def __init__(self, database: Database, *, outcome_wait: float = OUTCOME_WAIT_SECONDS) -> None:
        self.database = database
        self.outcome_wait = outcome_wait
        self._in_call: set[str] = set()

    async def take_over(self, row: Message) -> Message:
        """A `sending` row found by a new attempt: `retrying` if its attempt died, else the
        outcome of the live attempt that holds it (see the module docstring)."""
        if row.message_id in self._in_call:
            return await self.await_outcome(row.message_id)
        async with self.database.session() as session:
            try:
                await self._limits(session)
                held = await self._lock(session, row.message_id, row.attempts, nowait=True)
            except OperationalError as err:
                if not _lock_not_available(err):
                    raise
                held = None
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
                return await self.await_outcome(row.message_id)
            activity.logger.warning(
                "Message %s was left mid-send by a dead attempt; sending it again with the "
                "same Message-ID",
                row.message_id,
            )
            await session.commit()
        row.status, row.reason = RETRYING, ABANDONED
        return row

    async def await_outcome(self, message_id: str) -> Message:
        """The final row of a message another attempt is sending; retryable if it takes long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.outcome_wait
        while True:
            row: Message | None = None
            async with self.database.session() as session:
                try:
                    await self._limits(session, lock_timeout=max(deadline - loop.time(), 0.001))
                    query = select(Message).where(col(Message.message_id) == message_id)
                    row = (await session.exec(query.with_for_update())).first()
                except OperationalError as err:
                    if not _lock_not_available(err):
                        raise
                if row is not None:
                    session.expunge(row)  # read after the rollback, which would expire it
                await session.rollback()
            if row is not None and row.status not in (SENDING, RETRYING):
                return row
            if (row is not None and row.status == RETRYING) or loop.time() >= deadline:
                raise ApplicationError(
                    f"message {message_id} is {row.status if row else 'gone'} "
                    "in another attempt; retrying",
                    type=ERR_SEND_IN_FLIGHT,
                )
            await asyncio.sleep(OUTCOME_POLL_SECONDS)

    async def deliver(self, message_id: str, attempts: int, call: Call[T]) -> T | Message:
        """Run `call` on the claim `attempts` of `message_id`, holding its row locked.

        Returns what `call` returns; or, when a later attempt took the claim over first, that
        attempt's final row (this one sends nothing). Once the call has started it runs to
        its end even if the activity is cancelled meanwhile; the cancellation is honoured
        afterwards, so the outcome of a handed-over message is always recorded.
        """
        async with self.database.session() as session:
            await self._limits(session)
            try:
                held = await self._lock(session, message_id, attempts)
            except OperationalError as err:
                if not _lock_not_available(err):
                    raise
                held = None
            if held is None:
                await session.rollback()
                return await self.await_outcome(message_id)
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

    async def _limits(self, session: AsyncSession, *, lock_timeout: float | None = None) -> None:
        """PostgreSQL limits for a transaction that may hold a message row across a call."""
        if self.database.dialect != "postgresql":
            return
        await session.exec(
            select(
                func.set_config(
                    "idle_in_transaction_session_timeout", str(SEND_TRANSACTION_IDLE_MS), True
                ),
                func.set_config("lock_timeout", str(int((lock_timeout or 30.0) * 1000)), True),
            )
        )

    async def _lock(
        self, session: AsyncSession, message_id: str, attempts: int, *, nowait: bool = False
    ) -> Message | None:
        """Lock the row if it is still the `sending` claim numbered `attempts`."""
        statement = (
            select(Message)
            .where(
                col(Message.message_id) == message_id,
                col(Message.status) == SENDING,
                col(Message.attempts) == attempts,
            )
            .with_for_update(nowait=nowait)
        )
        return (await session.exec(statement)).first()


def _lock_not_available(err: OperationalError) -> bool:
    """PostgreSQL refused a row lock (NOWAIT, or `lock_timeout` ran out)."""
    return getattr(err.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
