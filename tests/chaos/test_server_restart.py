"""The Temporal dev server stopped and restarted mid-run: nothing lost, nothing twice.

The file-backed dev server is stopped twice while the drill runs, once with SIGTERM and once
with SIGKILL, and started again each time on the same port and the same SQLite file. The
worker is not restarted: it must reconnect by itself and finish every enrollment, and the
SMTP sink must hold exactly one Message-ID per send step, as in test_worker_kill.py. The
figures are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter

import pytest

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


@pytest.mark.integration
@pytest.mark.timeout(600)
# Found by this test, not fixed yet: after a restart of the dev server the worker process
# sometimes stays alive with no pollers at all (describe_task_queue shows none; workflow tasks
# stay SCHEDULED), 3 of 5 runs at 100-150 enrollments, also on an idle machine. Not strict:
# a run where the worker does reconnect passes and checks every count.
@pytest.mark.xfail(
    strict=False,
    reason="worker sometimes stops polling after a Temporal server restart (issue 9 finding)",
)
async def test_server_restarted_mid_run_loses_nothing_and_sends_nothing_twice(
    dev_server: DevServer,
    chaos_worker: WorkerProcess,
    chaos_sink: CountingSink,
    database: Database,
) -> None:
    expected = ENROLLMENTS * len(SEND_STEPS)
    contact_ids = await add_contacts(database, ENROLLMENTS, uuid.uuid4().hex[:6])
    client = await dev_server.ready()
    chaos_worker.start()
    await chaos_worker.ready()
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

    worker_alive = chaos_worker.process is not None and chaos_worker.process.poll() is None
    print(
        f"\ndev server restarts: {len(stops)} ({'; '.join(stops)}), {DOWN_FOR:.0f} s down "
        f"each; one worker process throughout (starts: {chaos_worker.starts}, alive: "
        f"{worker_alive}); {ended}/{ENROLLMENTS} enrollments ended after {took:.0f} s"
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
    assert worker_alive and chaos_worker.starts == 1  # it reconnected by itself
    assert_exactly_once(report)
