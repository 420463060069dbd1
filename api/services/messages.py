"""A contact's messages, newest first, in keyset pages.

The cursor names the last message of a page by `(created_at, message_id)`, the sort key, so a
page is "older than that one": messages written meanwhile (newer) never shift or repeat what
follows, as an offset would. It is opaque to callers; base64 keeps it URL-safe.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from persistence import Message
from persistence.models import as_utc


class InvalidCursorError(ValueError):
    pass


def encode_cursor(message: Message) -> str:
    key = [as_utc(message.created_at).isoformat(), message.message_id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, message_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created_at)), str(message_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as err:
        raise InvalidCursorError("not a cursor this API returned; start without one") from err


def check_cursor(cursor: str | None) -> str | None:
    """Query validator: a bad cursor is a 422 on `cursor`, like any invalid parameter."""
    if cursor is not None:
        decode_cursor(cursor)
    return cursor


async def contact_messages(
    *, session: AsyncSession, contact_id: str, limit: int, cursor: str | None
) -> tuple[Sequence[Message], str | None]:
    """One page of the contact's messages and the cursor of the next, if there is one."""
    query = select(Message).where(col(Message.contact_id) == contact_id)
    if cursor is not None:
        created_at, message_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(Message.created_at) < created_at,
                and_(col(Message.created_at) == created_at, col(Message.message_id) < message_id),
            )
        )
    query = query.order_by(col(Message.created_at).desc(), col(Message.message_id).desc())
    # One more than asked tells whether another page follows, without a count.
    rows = (await session.exec(query.limit(limit + 1))).all()
    page = rows[:limit]
    return page, encode_cursor(page[-1]) if len(rows) > limit else None
