"""One benchmark side's worker, in a process of its own so its CPU and memory can be read.

    python -m bench.worker_process journeyman|raw

Settings come from the environment (JOURNEYMAN_*), as for `journeyman worker`.

- `journeyman`: the worker `journeyman worker` builds (`worker.build_worker`: every journey,
  its activities, its tuning from the settings), plus the benchmark journeys.
- `raw`: what a team would write on plain Temporal: a `Worker` with the hand-written workflows
  and the same `send_message` activity (same class, database, renderer and SMTP mailer), the
  same task-slot numbers and otherwise the SDK's defaults.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from email.message import EmailMessage

from temporalio.client import Client
from temporalio.worker import Worker

from activities import JourneyActivities, Mailer, SmtpMailer, TemplateRenderer
from bench.journeys import JOURNEYMAN_WORKFLOWS, RAW_WORKFLOWS
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from persistence import create_database
from worker import build_worker

READY = "bench worker polling"
# BENCH_MAILER=none: the send activity runs its whole path except the SMTP call.
MAILER = "BENCH_MAILER"


class DroppingMailer:
    async def send(self, message: EmailMessage) -> None:
        return None


def mailer(settings: Settings) -> Mailer:
    if os.environ.get(MAILER) == "none":
        return DroppingMailer()
    return SmtpMailer.from_settings(settings)


def journeyman_worker(client: Client, settings: Settings) -> Worker:
    database = create_database(settings.database_url_resolved)
    return build_worker(
        client,
        settings,
        database,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=mailer(settings),
        starter=EnrollmentService(client=client, database=database, settings=settings).start,
        extra_workflows=JOURNEYMAN_WORKFLOWS,
    )


def raw_worker(client: Client, settings: Settings) -> Worker:
    database = create_database(settings.database_url_resolved)
    renderer = TemplateRenderer.from_settings(settings)
    acts = JourneyActivities(
        database=database,
        settings=settings,
        renderer=renderer,
        mailer=mailer(settings),
        starter=EnrollmentService(client=client, database=database, settings=settings).start,
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(RAW_WORKFLOWS),
        activities=[acts.send_message],
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
    )


async def main(side: str) -> None:
    settings = Settings()
    client = await Client.connect(settings.temporal_address)
    build = journeyman_worker if side == "journeyman" else raw_worker
    worker = build(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        print(READY, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
