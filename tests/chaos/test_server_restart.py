"""The Temporal dev server stopped and restarted mid-run: nothing lost, nothing twice.

The file-backed dev server is stopped twice while the drill runs, once with SIGTERM and once
with SIGKILL, and started again each time on the same port and the same SQLite file. The
worker must reconnect by itself and finish every enrollment, and the SMTP sink must hold
exactly one Message-ID per send step, as in test_worker_kill.py. The worker runs as in
production: with its poller watchdog, under a supervisor that starts it again if it exits. The
figures are printed (`pytest -s`).

Issue 9's "worker alive with 0 pollers after a restart" was this harness's doing: the SDK's
core logs to stdout, which the test piped and stopped reading after READY; once the pipe was
full, the core thread writing a retry warning blocked, and polling with it (see
`WorkerProcess.ready`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter

import pytest

from journeyman.worker_watchdog import STALLED_EXIT_CODE
from persistence import Database
from tests.chaos.conftest import (
    CLEAN_DRILL,
    CountingSink,
    DevServer,
    WorkerProcess,
    add_contacts,
    assert_exactly_once,
    check_deliveries,
    drill_outcomes,
    drill_results,
    messages_at_sink,
    pollers,
    start_drills,
    wait_until_ended,
)
from tests.chaos.journey import SEND_STEPS

ENROLLMENTS = int(os.environ.get("CHAOS_SERVER_ENROLLMENTS", "100"))
# Each stop comes once the sink holds this share of the expected messages: mid-run.
STOP_AT = ((signal.SIGTERM, 0.25), (signal.SIGKILL, 0.6))
# How long the server stays down each time (the worker's polls and completions fail).
DOWN_FOR = 3.0
# A stop waits at most this long for its share of the messages, then stops anyway.
STOP_WITHIN = 60.0
# The run fails only if no enrollment ended for this long (a slow machine is no failure).
STALL = 90.0
# The worker's watchdog exits it once the server has not seen it poll for this long.
WATCHDOG_GRACE = 30.0


@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_server_restarted_mid_run_loses_nothing_and_sends_nothing_twice(
    dev_server: DevServer,
    chaos_worker: WorkerProcess,
    chaos_sink: CountingSink,
    database: Database,
) -> None:
    expected = ENROLLMENTS * len(SEND_STEPS)
    contact_ids = await add_contacts(database, ENROLLMENTS, uuid.uuid4().hex[:6])
    client = await dev_server.ready()
    # The watchdog checks often here, so that a worker that stopped polling would be restarted
    # well within STALL (production: every 30 s, after 120 s).
    chaos_worker.env.update(
        JOURNEYMAN_WORKER_WATCHDOG_SECONDS="5",
        JOURNEYMAN_WORKER_WATCHDOG_GRACE_SECONDS=str(WATCHDOG_GRACE),
    )
    chaos_worker.start()
    await chaos_worker.ready()
    supervisor = asyncio.create_task(chaos_worker.supervise())
    began = time.monotonic()
    handles = await start_drills(client, contact_ids, chaos_worker.task_queue)

    stops: list[str] = []
    for signum, share in STOP_AT:
        seen = await messages_at_sink(chaos_sink, int(expected * share), within=STOP_WITHIN)
        dev_server.stop(signum)
        stops.append(f"{signal.Signals(signum).name} at {seen}/{expected} messages")
        await asyncio.sleep(DOWN_FOR)
        dev_server.start()
        await dev_server.ready()
    ended = await wait_until_ended(database, contact_ids, stall=STALL)
    took = time.monotonic() - began
    supervisor.cancel()

    worker_alive = chaos_worker.process is not None and chaos_worker.process.poll() is None
    print(
        f"\ndev server restarts: {len(stops)} ({'; '.join(stops)}), {DOWN_FOR:.0f} s down "
        f"each; worker starts: {chaos_worker.starts} (exits by itself: {chaos_worker.exits}, "
        f"alive: {worker_alive}); {ended}/{ENROLLMENTS} enrollments ended after {took:.0f} s"
    )
    if ended < ENROLLMENTS:
        polling = await pollers(await dev_server.ready(), chaos_worker.task_queue)
        pytest.fail(
            f"{ENROLLMENTS - ended} enrollment(s) never ended; pollers on the task queue now: "
            f"{polling} (none from a live worker: it stopped polling after the restart)"
        )
    results = await drill_results(handles)
    assert drill_outcomes(results) == Counter({CLEAN_DRILL: ENROLLMENTS})
    report = await check_deliveries(database, chaos_sink, contact_ids)
    print("\n".join(report.lines()))
    assert dev_server.starts == 1 + len(STOP_AT)
    # The worker reconnects by itself; should it ever stop polling, only the watchdog may have
    # ended it (a crash would be a bug of its own).
    assert worker_alive
    assert all(code == STALLED_EXIT_CODE for code in chaos_worker.exits), chaos_worker.exits
    assert_exactly_once(report)
