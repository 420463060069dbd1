"""The end-to-end benchmark's raw baseline: what a team would write on plain Temporal to send a
welcome email when someone signs up, and the worker process that runs it.

    python -m bench.e2e_raw     # settings from JOURNEYMAN_* (Temporal address, SMTP, queue)

One workflow, started by signal-with-start with the `signed_up` event; on the event it runs one
activity that renders the same `welcome_series/welcome` template and sends it with aiosmtplib
(one connection per message, as Journeyman's mailer does), then waits on a two-day timer, as
`welcome_series` does before its next email. No database, no consent or cap checks, no
claim-before-send, no step records: the difference to Journeyman is what those cost.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import aiosmtplib

    from activities.email import build_email, sender_domain
    from activities.rendering import TemplateRenderer
    from journeyman.settings import Settings
    from workflows.contracts import ContactSnapshot

WORKFLOW = "bench_raw_welcome"
ACTIVITY = "bench_raw_send_welcome"
SIGNAL = "event"
TEMPLATE = "welcome_series/welcome"
READY = "raw e2e worker polling"


@dataclass
class RawEvent:
    id: str
    contact_id: str
    email: str
    name: str = "signed_up"
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawInput:
    contact_id: str


@dataclass
class RawEmail:
    message_id: str
    contact_id: str
    email: str


@dataclass
class RawSent:
    message_id: str


@dataclass
class RawResult:
    sent: int


@workflow.defn(name=WORKFLOW)
class RawWelcome:
    def __init__(self) -> None:
        self.events: list[RawEvent] = []

    @workflow.signal(name=SIGNAL)
    def event(self, event: RawEvent) -> None:
        self.events.append(event)

    @workflow.run
    async def run(self, start: RawInput) -> RawResult:
        await workflow.wait_condition(lambda: bool(self.events))
        event = self.events[0]
        await workflow.execute_activity(
            ACTIVITY,
            RawEmail(
                message_id=f"{event.id}:welcome", contact_id=start.contact_id, email=event.email
            ),
            result_type=RawSent,
            start_to_close_timeout=timedelta(seconds=60),
        )
        await workflow.sleep(timedelta(days=2))
        return RawResult(sent=1)


class RawSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.renderer = TemplateRenderer.from_settings(settings)
        self.domain = sender_domain(settings.email_from)

    @activity.defn(name=ACTIVITY)
    async def send_welcome(self, request: RawEmail) -> RawSent:
        contact = ContactSnapshot(contact_id=request.contact_id, exists=True, email=request.email)
        context = self.renderer.context(
            contact=contact, event=None, journey="welcome_series", step="welcome"
        )
        message = build_email(
            message_id=request.message_id,
            sender=self.settings.email_from,
            recipient=request.email,
            rendered=self.renderer.render_email(TEMPLATE, context),
            domain=self.domain,
        )
        await aiosmtplib.send(
            message,
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            timeout=self.settings.smtp_timeout_seconds,
        )
        return RawSent(message_id=request.message_id)


async def main() -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    settings = Settings()
    client = await Client.connect(settings.temporal_address)
    sender = RawSender(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The SDK's defaults, but the task slots Journeyman's worker has from its settings.
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RawWelcome],
        activities=[sender.send_welcome],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
    ):
        print(READY, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
