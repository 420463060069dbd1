"""Rows a sent email leaves, provider request bodies, and reads of what feedback changed."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import col, select

from activities.email import message_id_header
from persistence import Contact, Database, Engagement, EventRecord, Message

FEEDBACK_SECRET = "feedback-test-secret"
MAILGUN_KEY = "mailgun-test-signing-key"
WEBHOOK = "/v1/webhooks/email"
BEARER = {"Authorization": f"Bearer {FEEDBACK_SECRET}"}


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without API key on an app of the test's own (other settings)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
        ) as client,
    ):
        yield client


async def sent_email(database: Database, contact_id: str, *, channel: str = "email") -> Message:
    """A contact (created if new) and one email sent to it, as the send activity records it."""
    workflow_id = f"journey:welcome_series:{contact_id}"
    message_id = f"{workflow_id}:{uuid.uuid4()}:welcome"
    async with database.session() as session:
        if await session.get(Contact, contact_id) is None:
            session.add(Contact(contact_id=contact_id, email="ada@example.com"))
        row = Message(
            message_id=message_id,
            workflow_id=workflow_id,
            run_id=str(uuid.uuid4()),
            journey="welcome_series",
            step="welcome",
            contact_id=contact_id,
            channel=channel,
            template="welcome_series/welcome",
            status="sent",
            to_address="ada@example.com",
            provider_message_id=message_id_header(message_id, "shop.example.com"),
        )
        session.add(row)
        await session.commit()
    return row


def event(message_ref: str, type_: str = "delivered", **fields: Any) -> dict[str, Any]:
    """One event in Journeyman's format, with a fresh provider id."""
    return {"id": f"pe-{uuid.uuid4().hex}", "type": type_, "message_id": message_ref, **fields}


def mailgun_body(
    message: Message,
    event_name: str = "delivered",
    *,
    key: str = MAILGUN_KEY,
    timestamp: int | None = None,
    token: str | None = None,
    **event_data: Any,
) -> dict[str, Any]:
    """A signed Mailgun event webhook body, as Mailgun posts it (Message-ID without <>)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]  # 50 characters, like Mailgun's
    header = (message.provider_message_id or "").strip("<>")
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": sign(key, stamp, token)},
        "event-data": {
            "event": event_name,
            "id": uuid.uuid4().hex[:22],
            "timestamp": time.time(),
            "recipient": message.to_address,
            "message": {"headers": {"message-id": header}},
            **event_data,
        },
    }


def sign(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


async def message(database: Database, message_id: str) -> Message:
    async with database.session() as session:
        row = await session.get(Message, message_id, populate_existing=True)
    assert row is not None
    return row


async def contact(database: Database, contact_id: str) -> Contact:
    async with database.session() as session:
        row = await session.get(Contact, contact_id, populate_existing=True)
    assert row is not None
    return row


async def engagements(database: Database, message_id: str) -> list[Engagement]:
    query = select(Engagement).where(col(Engagement.message_id) == message_id)
    async with database.session() as session:
        return list((await session.exec(query.order_by(col(Engagement.id)))).all())


async def consent_events(database: Database, contact_id: str) -> list[EventRecord]:
    query = select(EventRecord).where(
        col(EventRecord.contact_id) == contact_id, col(EventRecord.name) == "unsubscribed"
    )
    async with database.session() as session:
        return list((await session.exec(query)).all())
