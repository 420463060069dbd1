"""Fixtures for the activity tests: a real SMTP sink, settings pointing at it, and contacts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from activities import JourneyActivities, Mailer, SmtpMailer, TemplateRenderer
from activities.journey_activities import Clock
from activities.policy import send_time
from journeyman.ports import free_port
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Contact, Database
from workflows.contracts import StartJourneyRequest, StartJourneyResult

AddContact = Callable[..., Awaitable[str]]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", 0, refuse=["bounce@example.com"]) as running:
        yield running


@pytest.fixture
def settings(sink: SmtpSink) -> Settings:
    # No quiet hours: the send tests must not depend on the time of day they run at. The
    # tests of the rules set their own hours, caps and clock.
    return Settings(
        smtp_host=sink.host,
        smtp_port=sink.port,
        smtp_timeout_seconds=5,
        public_url="https://shop.example.com",
        email_from="Acme Outfitters <hello@shop.example.com>",
        quiet_hours="",
    )


@pytest.fixture
def renderer(settings: Settings) -> TemplateRenderer:
    return TemplateRenderer.from_settings(settings)


class RecordingStarter:
    """Stands in for the enrollment service, which the worker wires in."""

    def __init__(self) -> None:
        self.requests: list[StartJourneyRequest] = []

    async def __call__(self, request: StartJourneyRequest) -> StartJourneyResult:
        self.requests.append(request)
        return StartJourneyResult(
            journey=request.journey, workflow_id=f"journey:{request.journey}", action="started"
        )


@pytest.fixture
def starter() -> RecordingStarter:
    return RecordingStarter()


def make_activities(
    database: Database,
    settings: Settings,
    starter: RecordingStarter | None = None,
    *,
    mailer: Mailer | None = None,
    clock: Clock = send_time,
) -> JourneyActivities:
    return JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=mailer or SmtpMailer.from_settings(settings),
        starter=starter or RecordingStarter(),
        clock=clock,
    )


@pytest.fixture
def activities(
    database: Database, settings: Settings, starter: RecordingStarter
) -> JourneyActivities:
    return make_activities(database, settings, starter)


@pytest.fixture
def add_contact(database: Database) -> AddContact:
    """Insert a contact with a fresh id (the database is shared by the whole session)."""

    async def add(email: str | None = "ada@example.com", **fields: Any) -> str:
        contact_id = f"c-{uuid.uuid4().hex[:10]}"
        async with database.session() as session:
            session.add(Contact(contact_id=contact_id, email=email, **fields))
            await session.commit()
        return contact_id

    return add


def closed_port() -> int:
    """A port nobody listens on (free right now), for connection-refused cases."""
    return free_port()


@pytest.fixture
async def hangs_up_after_data() -> AsyncIterator[int]:
    """An SMTP server that takes the whole message, then drops the line without answering."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 flaky.example.com ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250 flaky.example.com\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
