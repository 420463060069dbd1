"""The worker SIGKILLed every 1-4 s while enrollments run: nothing lost, nothing twice.

300 enrollments by default, to stay within CI's time budget on two cores (each costs about
0.3 CPU-seconds between worker and server); `CHAOS_ENROLLMENTS=1000` runs the issue's drill.

The real worker runs as a child process on a file-backed dev server, the drill journey sends
three emails per enrollment with waits of seconds between them, and a real SMTP sink counts
what arrives by Message-ID. Each kill takes whatever the worker had in flight: workflow
tasks, sends between their claim and their outcome. At the end every enrollment must have
completed with its three sends `sent`, the sink must hold exactly one Message-ID per send
step (none missing, none for a step twice), and a Message-ID may arrive twice only where the
message log shows a claim taken over from a dead attempt: a kill after the SMTP server
accepted the message and before `sent` was committed (a receiver that de-duplicates by
Message-ID keeps one; such repeats are counted and printed). The figures are printed
(`pytest -s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter

import pytest
from sqlmodel import col, select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from persistence import Database, Enrollment
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
    ended_count,
    replies_received,
    start_drills,
    wait_until_ended,
)
from tests.chaos.journey import REPLY, SEND_STEPS, ChaosDrill
from workflows.contracts import EVENT_SIGNAL, EnrollmentResult, Event

# The drill is 1,000 enrollments (CHAOS_ENROLLMENTS=1000); 300 fit CI's budget.
ENROLLMENTS = int(os.environ.get("CHAOS_ENROLLMENTS", "300"))
# Seconds between a worker's READY and its SIGKILL.
KILL_EVERY = (1.0, 4.0)
# Kills stop after this long (or when every enrollment ended); the last worker finishes.
CHAOS_FOR = 45.0
# Every REPLY_EVERY-th enrollment is sent the reply its `wait_for` step waits for.
REPLY_EVERY = 4


async def send_replies(
    database: Database,
    handles: list[WorkflowHandle[ChaosDrill, EnrollmentResult]],
    contact_ids: list[str],
) -> int:
    """Until cancelled, signal a reply to every REPLY_EVERY-th enrollment once its second send
    is done (it is then waiting for the reply, unless it timed out meanwhile: the sends do not
    depend on it); how many signals the server accepted."""
    pending = dict(list(zip(contact_ids, handles, strict=True))[::REPLY_EVERY])
    accepted = 0
    with contextlib.suppress(asyncio.CancelledError):
        while pending:
            async with database.session() as session:
                ready = (
                    await session.exec(
                        select(Enrollment.contact_id).where(
                            col(Enrollment.contact_id).in_(list(pending)),
                            col(Enrollment.current_step) == SEND_STEPS[1],
                        )
                    )
                ).all()
            for contact_id in ready:
                event = Event(id=f"reply-{contact_id}", contact_id=contact_id, name=REPLY)
                with contextlib.suppress(RPCError):  # ended already
                    await pending.pop(contact_id).signal(EVENT_SIGNAL, event)
                    accepted += 1
            await asyncio.sleep(0.5)
    return accepted


@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_worker_killed_every_few_seconds_loses_nothing_and_sends_nothing_twice(
    dev_server: DevServer,
    chaos_worker: WorkerProcess,
    chaos_sink: CountingSink,
    database: Database,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    contact_ids = await add_contacts(database, ENROLLMENTS, uuid.uuid4().hex[:6])
    client = await dev_server.ready()
    chaos_worker.start()
    await chaos_worker.ready()
    began = time.monotonic()
    handles = await start_drills(client, contact_ids, chaos_worker.task_queue)
    replies = asyncio.create_task(send_replies(database, handles, contact_ids))

    ended = 0
    while ended < ENROLLMENTS and time.monotonic() - began < CHAOS_FOR:
        await asyncio.sleep(rng.uniform(*KILL_EVERY))
        chaos_worker.kill()
        chaos_worker.start()
        await chaos_worker.ready()
        ended = await ended_count(database, contact_ids)
    ended_during_chaos = ended
    ended = await wait_until_ended(database, contact_ids)
    took = time.monotonic() - began
    replies.cancel()
    replied = await replies

    print(
        f"\nworker SIGKILL chaos (seed {seed}): {chaos_worker.kills} kills, "
        f"{chaos_worker.starts} worker starts, {ended_during_chaos} enrollments ended during "
        f"the kills, {ended}/{ENROLLMENTS} ended after {took:.0f} s; replies signalled: "
        f"{replied}"
    )
    assert ended == ENROLLMENTS, f"{ENROLLMENTS - ended} enrollment(s) never ended"
    results = await drill_results(handles)
    assert drill_outcomes(results) == Counter({CLEAN_DRILL: ENROLLMENTS})
    report = await check_deliveries(database, chaos_sink, contact_ids)
    print(f"enrollments that received a reply: {replies_received(results)}")
    print("\n".join(report.lines()))
    assert chaos_worker.kills > 0
    assert_exactly_once(report)
