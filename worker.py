"""The worker: every journey version and the activities they call, in one process.

Dependencies (database, template renderer, mailer, the HTTP client of the SMS, push and
webhook adapters, enrollment service) are built once here and shared by all activity calls.
Migrations are not run here: `journeyman migrate` (or `journeyman dev`) is the start-up step
that owns the schema.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import JourneyActivities, Mailer, SmtpMailer, Starter, TemplateRenderer
from activities.bulk import bulk_parts
from activities.channels import ChannelSender, build_channel_senders
from activities.contact_updates import contact_update_parts
from activities.crm import CrmConnector, build_crm_connector
from activities.crm_sync import crm_parts
from activities.lifecycle import LifecycleRecorder
from activities.metrics import SendLatencyInterceptor, worker_runtime
from activities.scoring import scoring_parts
from activities.segments import segment_parts
from activities.timing import TimingActivities
from journeyman.crm.start import ensure_crm_sync
from journeyman.enrollments import EnrollmentService
from journeyman.sandbox import sandboxed_runner
from journeyman.schedules import ensure_schedules
from journeyman.settings import Settings
from journeyman.temporal import connect_when_ready, ensure_search_attributes
from journeyman.tracing import configure_tracing
from journeyman.worker_watchdog import exit_stalled, watchdog_for
from persistence import Database, create_database
from workflows import catalog
from workflows.contracts import SEND_MESSAGE

log = logging.getLogger("journeyman.worker")

# On SIGTERM, in-flight activities get this long to finish before they are cancelled. A send
# cut off mid-call is sent again by its next attempt with the same Message-ID (see
# activities/journey_activities.py), so this grace is what keeps a routine restart from
# handing a receiver the same message twice.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


# The journey runtime's own modules: deterministic library code with no module-level state
# that a run changes (constants, dataclasses, pure functions). Loaded once in the worker and
# shared by every run instead of executed again inside each run's sandbox. Journeys import
# them inside `imports_passed_through()` already; naming them here keeps a journey that
# forgets to (a user-written module) from re-running runtime.py per enrollment (measured:
# 17 ms of CPU per new run instead of 5). The journey modules themselves (and `workflows`,
# their package) stay sandboxed and are executed per run, so a journey calling
# `datetime.now()` or `random` is still stopped.
PASSED_THROUGH = (
    "workflows.runtime",
    "workflows.contracts",
    "workflows.splits",
    "workflows.content",
)


def workflow_runner(converter: DataConverter = DataConverter.default) -> SandboxedWorkflowRunner:
    """The sandbox every journey runs in: the SDK's default restrictions plus PASSED_THROUGH,
    without the per-payload context lookup where `converter` ignores context (journeyman.sandbox).
    """
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    return sandboxed_runner(restrictions, converter)


def build_worker(
    client: Client,
    settings: Settings,
    database: Database,
    *,
    renderer: TemplateRenderer,
    mailer: Mailer,
    starter: Starter,
    senders: Mapping[str, ChannelSender] | None = None,
    crm: CrmConnector | None = None,
    extra_workflows: Sequence[type] = (),
) -> Worker:
    """A worker on `settings.task_queue` for every journey version in the catalog, the lead
    scorer and, with a `crm` connector, the CRM sync.

    Old versions stay registered so that enrollments started before a new version shipped
    finish on the code they began with. Email goes through `mailer`; `senders` adds the other
    channels by name (a send on a channel without one is recorded as unsupported).
    """
    acts = JourneyActivities(
        database=database,
        settings=settings,
        renderer=renderer,
        mailer=mailer,
        senders=senders,
        starter=starter,
    )
    timing = TimingActivities(database=database, settings=settings)
    # Threshold events (lead.qualified...) the scorer emits route like any event.
    router = EnrollmentService(client=client, database=database, settings=settings)
    features = [
        scoring_parts(database=database, settings=settings, router=router),
        segment_parts(database, settings),
        contact_update_parts(database, settings),
        bulk_parts(database=database, settings=settings, enrollments=router),
        crm_parts(
            database=database, settings=settings, renderer=renderer, mailer=mailer, connector=crm
        ),
    ]
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            *catalog.all_versions(),
            *(w for part in features for w in part.workflows),
            # Workflows outside the catalog (the benchmarks' journeys) on the same wiring.
            *extra_workflows,
        ],
        # The lifecycle records run as local activities; the SDK serves local and normal
        # activities from this one list.
        activities=[
            acts.send_message,
            acts.read_contact,
            acts.start_journey,
            *LifecycleRecorder(database).activities(),
            timing.next_local_time,
            *(a for part in features for a in part.activities),
        ],
        workflow_runner=workflow_runner(client.data_converter),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_task_queue_activities_per_second=(
            settings.worker_max_task_queue_activities_per_second or None
        ),
        # Times each send; exported only when the client's runtime exports metrics.
        interceptors=[SendLatencyInterceptor()],
    )


def wired_worker(
    client: Client,
    settings: Settings,
    database: Database,
    http: httpx.AsyncClient,
    *,
    extra_workflows: Sequence[type] = (),
) -> Worker:
    """`build_worker` with the parts the settings name: SMTP, the SMS, push and webhook
    adapters on `http`, the CRM connector, starts through an `EnrollmentService`. This is the
    worker `journeyman worker` runs (`extra_workflows`: test journeys, e.g. tests/chaos)."""
    renderer = TemplateRenderer.from_settings(settings)
    return build_worker(
        client,
        settings,
        database,
        renderer=renderer,
        mailer=SmtpMailer.from_settings(settings),
        starter=EnrollmentService(client=client, database=database, settings=settings).start,
        senders=build_channel_senders(settings, renderer, http),
        crm=build_crm_connector(settings, http),
        extra_workflows=extra_workflows,
    )


def build_send_worker(client: Client, settings: Settings, worker: Worker) -> Worker | None:
    """With JOURNEYMAN_SEND_TASK_QUEUE set, a second worker polling that queue for sends only
    (the main worker's own `send_message`), capped at JOURNEYMAN_SEND_MAX_PER_SECOND across all
    workers by the server: a provider's quota limits sends, not every activity."""
    if not settings.send_task_queue:
        return None
    (send,) = (
        fn
        for fn in worker.config()["activities"]
        if getattr(fn, "__temporal_activity_definition").name == SEND_MESSAGE
    )
    return Worker(
        client,
        task_queue=settings.send_task_queue,
        activities=[send],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_task_queue_activities_per_second=settings.send_max_per_second or None,
        interceptors=[SendLatencyInterceptor()],
    )


async def run_worker(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then let in-flight tasks finish and exit."""
    # The process's default runtime, set before the first connection creates it: the client,
    # and so the worker and its activities, log through Python logging and report through
    # its Prometheus exporter. This is the worker's process: nothing else shares the default.
    Runtime.set_default(worker_runtime(settings.worker_metrics_address))
    if settings.worker_metrics_address:
        log.info("Worker metrics for Prometheus on %s", settings.worker_metrics_address)
    # Tracing (off by default): its replay-safe provider must be global before the worker is
    # built, which the client's OpenTelemetry plugin checks.
    configure_tracing(settings, "worker")
    client = await connect_when_ready(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    database = create_database(settings.database_url_resolved)
    # One HTTP client for every provider call, so connections are pooled across sends.
    http = httpx.AsyncClient()
    try:
        worker = wired_worker(client, settings, database, http)
        await ensure_crm_sync(client, settings)
        # The journeys' Temporal Schedules, created or updated from their declarations.
        await ensure_schedules(client, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        workers = [w for w in (worker, build_send_worker(client, settings, worker)) if w]
        running = [asyncio.create_task(w.run()) for w in workers]
        stopping = asyncio.create_task(stop.wait())
        # Exits the process if the server stops seeing these workers poll (issue 9).
        watchdog = watchdog_for(client, settings, workers)
        watching = [asyncio.create_task(watchdog.run())] if watchdog else []
        log.info(
            "Worker polling task queue %r%s on %s (namespace %s)",
            settings.task_queue,
            f" and {settings.send_task_queue!r} for sends" if len(workers) > 1 else "",
            settings.temporal_address,
            settings.temporal_namespace,
        )
        await asyncio.wait({*running, stopping, *watching}, return_when=asyncio.FIRST_COMPLETED)
        for watch in watching:
            if watch.done():
                # In-flight tasks get the usual grace (and a little) before the exit.
                patience = GRACEFUL_SHUTDOWN.total_seconds() + 5
                await exit_stalled(watch.result(), workers, patience=patience)
            watch.cancel()
        if any(task.done() for task in running):
            stopping.cancel()
            for task in running:
                if task.done():
                    task.result()  # a fatal worker error: let it surface
        log.info("Stopping: finishing in-flight tasks (up to %s)", GRACEFUL_SHUTDOWN)
        await asyncio.gather(*(w.shutdown() for w in workers))
        await asyncio.gather(*running)
    finally:
        await http.aclose()
        await database.dispose()
