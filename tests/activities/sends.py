"""Send requests as the runtime builds them, message rows as attempts leave them, and clocks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from persistence import Database, Message
from workflows.contracts import SendRequest

from .samples import CART, event


def send_request(
    contact_id: str,
    *,
    journey: str = "abandoned_cart",
    step: str = "first_reminder",
    **overrides: Any,
) -> SendRequest:
    """A marketing cart reminder by default; each call is a new enrollment (a new message id)."""
    workflow_id = f"journey:{journey}:{contact_id}:cart-7"
    run_id = str(uuid.uuid4())
    fields: dict[str, Any] = {
        "message_id": f"{workflow_id}:{run_id}:{step}",
        "workflow_id": workflow_id,
        "run_id": run_id,
        "journey": journey,
        "version": 1,
        "step": step,
        "contact_id": contact_id,
        "channel": "email",
        "template": "abandoned_cart/reminder",
        "context": CART,
        "trigger": event("cart_abandoned", CART),
    }
    return SendRequest(**{**fields, **overrides})


async def message_row(database: Database, message_id: str) -> Message:
    async with database.session() as session:
        row = await session.get(Message, message_id)
    assert row is not None, f"no message row for {message_id}"
    return row


async def no_message_row(database: Database, message_id: str) -> bool:
    async with database.session() as session:
        return await session.get(Message, message_id) is None


async def put_message(database: Database, request: SendRequest, **fields: Any) -> None:
    """A row as an earlier attempt would have left it."""
    async with database.session() as session:
        session.add(
            Message(
                message_id=request.message_id,
                workflow_id=request.workflow_id,
                run_id=request.run_id,
                journey=request.journey,
                step=request.step,
                contact_id=request.contact_id,
                channel=request.channel,
                template=request.template,
                **fields,
            )
        )
        await session.commit()


class Clock:
    """The send activity's "now", set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
