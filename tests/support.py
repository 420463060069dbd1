"""Test building blocks shared by several folders: the API app on the real servers, and a worker
running every catalog journey with sends captured instead of delivered."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

from fastapi import FastAPI
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities import JourneyActivities, TemplateRenderer
from activities.lifecycle import LifecycleRecorder, lifecycle_writer, send_with_records
from activities.scoring import scoring_parts
from api import create_app
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import Database
from tests.api.helpers import SentMessages
from workflows import catalog
from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult


class _UnusedMailer:
    async def send(self, message: EmailMessage) -> None:
        raise AssertionError("sends are captured before any mailer is reached")


@asynccontextmanager
async def running_app(
    settings: Settings, client: Client, database: Database
) -> AsyncIterator[FastAPI]:
    """The API app with its lifespan running, on the given Temporal client and database."""
    app = create_app(settings, client=client, database=database)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def capturing_worker(
    client: Client, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    """A worker on `settings.task_queue` running every journey version with the real
    contact, lifecycle and start activities; `send_message` only records the request (and
    writes the lifecycle records a journey hands it, as the real one does)."""
    captured = SentMessages()

    async def capture(request: SendRequest) -> SendResult:
        captured.append(request)
        return SendResult(message_id=request.message_id, status="sent")

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(request: SendRequest) -> SendResult:
        return await send_with_records(
            lifecycle_writer(database).submit, request, functools.partial(capture, request)
        )

    real = JourneyActivities(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=_UnusedMailer(),
        starter=EnrollmentService(client=client, database=database, settings=settings).start,
    )
    # Routing starts a contact's lead scorer for scored events (clicks, unsubscribes...).
    scoring = scoring_parts(
        database=database,
        settings=settings,
        router=EnrollmentService(client=client, database=database, settings=settings),
    )
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[*catalog.all_versions(), *scoring.workflows],
        activities=[
            send_message,
            real.read_contact,
            *LifecycleRecorder(database).activities(),
            real.start_journey,
            *scoring.activities,
        ],
    ):
        yield captured
