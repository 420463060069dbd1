"""The poller watchdog: a worker process that no longer polls exits, so it gets restarted.

A supervisor (Kubernetes, compose's `restart:`, `journeyman dev`) restarts a process that
exits, not one that stays alive with no pollers. So the worker asks the server, every
JOURNEYMAN_WORKER_WATCHDOG_SECONDS, whether its own identity is among the pollers of its task
queues; once the server has answered for JOURNEYMAN_WORKER_WATCHDOG_GRACE_SECONDS without
listing it, the process logs why and exits with `STALLED_EXIT_CODE`.

Rules, and why:
- Seen on any one of its queues (workflow or activity, main or send queue) counts as alive.
  The failure this guards against takes every poller at once (the SDK's threads wedged, the
  connection dead); requiring all of them would restart a healthy worker whose activity slots
  are all busy with long activities, since a worker with no free slot does not poll.
- A poller counts only if it polled within `FRESH`: the server keeps a poller listed for
  minutes after it stopped, and an idle worker's long poll is renewed about once a minute, so
  anything shorter would flag a healthy idle worker.
- A describe call that does not come back even after the SDK's own deadline counts as not
  polling: the SDK is stuck (issue 9's worker was: its core thread blocked writing its log
  to a full pipe), and its pollers with it.
- While the server does not answer nothing is counted (the worker cannot poll a server that
  is down either): the grace period restarts once it answers again, which leaves a healthy
  worker time to reconnect after a server restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from journeyman.settings import Settings

log = logging.getLogger("journeyman.worker_watchdog")

# EX_SOFTWARE: distinct from a crash's 1, so an operator can tell a stalled worker in the logs
# of a supervisor that only shows exit codes.
STALLED_EXIT_CODE = 70
# The server's long poll lasts up to a minute (then the SDK polls again): a poller listed with
# an older last access is gone.
FRESH = timedelta(seconds=90)
# One describe call must not hold the watchdog longer than this.
CALL_TIMEOUT = timedelta(seconds=10)

# One check: we poll (the server lists us, lately), we do not (it answers without listing us),
# the SDK is stuck (even its own deadline did not return), or the server did not answer.
Seen = Literal["polling", "absent", "stuck", "unreachable"]

_KINDS = {
    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW: "workflow",
    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY: "activity",
}


@dataclass(frozen=True)
class WatchedQueue:
    name: str
    kind: TaskQueueType.ValueType

    def __str__(self) -> str:
        return f"{self.name!r} ({_KINDS.get(self.kind, str(self.kind))})"


@dataclass(frozen=True)
class PollerWatchdog:
    """Watches that `identity` polls at least one of `queues`; `run` returns why it does not."""

    client: Client
    namespace: str
    identity: str
    queues: tuple[WatchedQueue, ...]
    interval: float
    grace: float
    fresh: timedelta = FRESH

    async def polling(self) -> Seen:
        """What one round of questions to the server says about our polling."""
        now = datetime.now(UTC)
        for queue in self.queues:
            call = self.client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.namespace,
                    task_queue=TaskQueue(name=queue.name),
                    task_queue_type=queue.kind,
                ),
                timeout=CALL_TIMEOUT,
            )
            try:
                # The deadline is the SDK's to enforce; if even it does not come back, the
                # SDK itself is stuck (as its pollers are), which is no proof of an outage.
                described = await asyncio.wait_for(call, 2 * CALL_TIMEOUT.total_seconds())
            except TimeoutError:
                log.warning("Watchdog: the Temporal client did not return; the SDK is stuck")
                return "stuck"
            except (RPCError, RuntimeError) as err:
                log.debug("Watchdog: the server did not answer (%s)", err)
                return "unreachable"
            for poller in described.pollers:
                if poller.identity != self.identity:
                    continue
                last = poller.last_access_time.ToDatetime(tzinfo=UTC)
                if now - last <= self.fresh:
                    return "polling"
        return "absent"

    async def run(self) -> str:
        """Check every `interval` seconds; return the reason once the server has answered for
        `grace` seconds without listing us as a poller. Never returns for a healthy worker."""
        loop = asyncio.get_running_loop()
        unseen_since: float | None = None
        while True:
            seen = await self.polling()
            now = loop.time()
            if seen in ("absent", "stuck"):
                unseen_since = now if unseen_since is None else unseen_since
                if now - unseen_since >= self.grace:
                    why = (
                        "the server answers without listing it"
                        if seen == "absent"
                        else "the Temporal client itself no longer returns (the SDK is stuck)"
                    )
                    return (
                        f"this worker ({self.identity}) has not been seen polling "
                        f"{', '.join(map(str, self.queues))} for {now - unseen_since:.0f}s: "
                        f"{why}; it stopped polling"
                    )
            else:
                unseen_since = None
            await asyncio.sleep(self.interval)


def watched_queues(workers: Sequence[Worker]) -> tuple[WatchedQueue, ...]:
    """Each worker's task queue, by the kinds of task it polls for."""
    queues: list[WatchedQueue] = []
    for worker in workers:
        config = worker.config()
        name = config["task_queue"]
        if config.get("workflows"):
            queues.append(WatchedQueue(name, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        if config.get("activities"):
            queues.append(WatchedQueue(name, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
    return tuple(queues)


def watchdog_for(
    client: Client, settings: Settings, workers: Sequence[Worker]
) -> PollerWatchdog | None:
    """The watchdog the settings ask for over these workers; None when it is off."""
    if not settings.worker_watchdog_seconds:
        return None
    return PollerWatchdog(
        client=client,
        namespace=settings.temporal_namespace,
        # The SDK polls with the client's identity (pid@host) unless a worker names its own.
        identity=client.identity,
        queues=watched_queues(workers),
        interval=settings.worker_watchdog_seconds,
        grace=settings.worker_watchdog_grace_seconds,
    )


async def exit_stalled(reason: str, workers: Sequence[Worker], *, patience: float) -> NoReturn:
    """Log why, give in-flight tasks up to `patience` seconds, and exit the process.

    `os._exit`, not an exception: a worker that stopped polling may have SDK threads that
    never return, and a normal interpreter exit waits for them.
    """
    log.error("Worker watchdog: %s; exiting so that the supervisor restarts it", reason)
    try:
        await asyncio.wait_for(asyncio.gather(*(w.shutdown() for w in workers)), patience)
    except Exception as err:  # exiting anyway; the reason is logged
        log.error("Worker watchdog: shutdown did not finish (%r); exiting now", err)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STALLED_EXIT_CODE)
