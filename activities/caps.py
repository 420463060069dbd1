"""Frequency caps: the contact's marketing messages on a channel within rolling windows.

Counting and claiming must be one transaction that holds a lock on the contact: otherwise two
journeys sending at the same instant both count "one below the cap" and both claim. The lock
is per contact, so sends to different contacts never wait for each other.

Counted are the contact's marketing messages on the channel in every status but `suppressed`
and `failed`: `sending` and `retrying` hold a slot because they may still go out (a retry
claims without counting again), and statuses written after a send (delivered, bounced...)
were sent. A message counts from its `created_at`, the moment its claim was taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from journeyman.settings import FrequencyCap
from persistence import Contact, Message

NOT_COUNTED = ("suppressed", "failed")


async def lock_contact(session: AsyncSession, contact_id: str, *, dialect: str) -> None:
    """Serialise cap checks for one contact until `session` ends its transaction.

    Must be the session's first statement, so the rest of the transaction sees every claim
    committed before the lock was granted.
    """
    if dialect == "sqlite":
        # SQLite has no row locks (it ignores FOR UPDATE) and its default transactions take
        # the write lock only at the first write, so two counts could still interleave. A
        # no-op write as the first statement takes the database's write lock now; the other
        # sender waits for it (busy_timeout) and, since its transaction starts with that
        # write, then reads the latest data, including our claim. Writers are few and the
        # transaction is short, so locking the whole file costs nothing that matters.
        await session.exec(
            update(Contact)
            .where(col(Contact.contact_id) == contact_id)
            .values(contact_id=col(Contact.contact_id))
        )
        return
    # PostgreSQL: a row lock on the contact. Under READ COMMITTED each later statement sees
    # what the previous holder committed before releasing it.
    await session.exec(
        select(Contact.contact_id).where(col(Contact.contact_id) == contact_id).with_for_update()
    )


async def cap_frees_at(
    session: AsyncSession,
    *,
    contact_id: str,
    channel: str,
    message_id: str,
    now: datetime,
    caps: Sequence[FrequencyCap],
) -> datetime | None:
    """None if one more message fits under every cap at `now`; else when a slot frees.

    `message_id` itself is never counted: a retry of a claimed message must not hold itself
    back.
    """
    if not caps:
        return None
    widest = max(cap.window for cap in caps)
    statement = (
        select(Message.created_at)
        .where(
            col(Message.contact_id) == contact_id,
            col(Message.channel) == channel,
            col(Message.category) == "marketing",
            col(Message.status).not_in(NOT_COUNTED),
            col(Message.created_at) > now - widest,
            col(Message.message_id) != message_id,
        )
        .order_by(col(Message.created_at))
    )
    times = [_utc(at) for at in (await session.exec(statement)).all()]
    return slot_frees_at(times, now, caps)


def slot_frees_at(
    times: Sequence[datetime], now: datetime, caps: Sequence[FrequencyCap]
) -> datetime | None:
    """Given the counted messages' times (oldest first), when one more fits under every cap.

    For a full cap, that is when enough of its oldest messages have left the window: with
    exactly `limit` inside, when the oldest leaves. Caps lowered by an operator may hold more
    than `limit`, hence the index. The latest of those moments frees every cap at once.
    """
    frees: list[datetime] = []
    for cap in caps:
        inside = [at for at in times if at > now - cap.window]
        if len(inside) >= cap.limit:
            frees.append(inside[len(inside) - cap.limit] + cap.window)
    return max(frees) if frees else None


def _utc(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
