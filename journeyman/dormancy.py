"""Dormant contacts (list hygiene): a re-engagement journey marks a silent contact dormant, and
the contact's own next action makes them active again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import Mapped
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from persistence import Contact


async def wake(session: AsyncSession, contact_id: str, occurred_at: datetime) -> None:
    """A dormant contact who acts is active again: marketing email may reach them anew.

    Called, in the caller's transaction, for a new behaviour event and for a click in an email
    (a deliberate act; an open is not, since mail clients and privacy proxies load pixels by
    themselves). Something that happened before they were marked dormant (a late upload) is
    old news and wakes nobody.
    """
    await session.exec(
        update(Contact)
        .where(col(Contact.contact_id) == contact_id, wakes(col(Contact.dormant_at), occurred_at))
        .values(dormant_at=None)
    )


def wakes(dormant_at: ColumnElement[Any] | Mapped[Any], occurred_at: Any) -> ColumnElement[bool]:
    """SQL: whether an act at `occurred_at` (a value or a bound parameter) wakes a contact
    whose `dormant_at` column is given; also used by the intake's contact upsert."""
    return and_(dormant_at.is_not(None), dormant_at <= occurred_at)
