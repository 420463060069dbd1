"""The CRM sync: one long-running workflow (id `crm-sync`) that drains the CRM outbox.

Each iteration runs `push_due` (one batch of contacts quiet for the sync window, or waiting
too long, plus pending sales tasks). A full batch means more is due: it goes again at once;
otherwise it sleeps until the next row falls due, or the idle poll interval. Changes are
written to the outbox by whoever makes them, in their own transaction, so the workflow needs
no signal to learn of them.

An outage or a rate limit is the activity's retry (the policy below has no attempt limit):
the loop simply waits on it, and every change waits in the outbox. After `MAX_ITERATIONS`, or
when Temporal suggests it, the workflow continues as new to keep its history short.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeyman.crm.contracts import (
        CRM_SYNC_WORKFLOW,
        PUSH_DUE,
        PushRequest,
        PushResult,
        SyncInput,
    )

MAX_ITERATIONS = 200
# A batch call plus up to a batch of task calls, each bounded by the provider timeout.
PUSH_TIMEOUT = timedelta(minutes=5)
# Backoff to a few minutes and never give up: a CRM down for a day delays the sync by a day.
PUSH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,
)
MIN_SLEEP = timedelta(seconds=1)


@workflow.defn(name=CRM_SYNC_WORKFLOW)
class CrmSync:
    @workflow.run
    async def run(self, state: SyncInput) -> None:
        iterations = 0
        while iterations < MAX_ITERATIONS and not workflow.info().is_continue_as_new_suggested():
            iterations += 1
            result: PushResult = await workflow.execute_activity(
                PUSH_DUE,
                PushRequest(now=workflow.now()),
                result_type=PushResult,
                start_to_close_timeout=PUSH_TIMEOUT,
                retry_policy=PUSH_RETRY,
            )
            if result.more_due:
                continue
            wait = MIN_SLEEP
            if result.next_check_at is not None:
                wait = max(MIN_SLEEP, result.next_check_at - workflow.now())
            await workflow.sleep(wait)
        workflow.continue_as_new(SyncInput(iterations=state.iterations + iterations))
