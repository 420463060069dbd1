"""Handing a scored event to the contact's scorer workflow (from `EnrollmentService.route`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from journeyman.scoring.contracts import SCORER_WORKFLOW, ScorerInput, scorer_workflow_id
from journeyman.scoring.rules import RULES
from workflows.contracts import EVENT_SIGNAL, Event

RPC_TIMEOUT = timedelta(seconds=10)


def is_scored(event: Event) -> bool:
    """Whether a scoring rule gives the event points (only those start a scorer)."""
    return any(rule.matches(event.name, event.properties) for rule in RULES)


async def signal_scorer(client: Client, task_queue: str, event: Event) -> str:
    """Deliver the event to the contact's running scorer, starting one if none runs; answers
    the workflow id. Repeating it is harmless: the scorer and its activities de-duplicate."""
    workflow_id = scorer_workflow_id(event.contact_id)
    await client.start_workflow(
        SCORER_WORKFLOW,
        ScorerInput(contact_id=event.contact_id),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[event],
        static_summary=f"lead score of {event.contact_id}",
        rpc_timeout=RPC_TIMEOUT,
    )
    return workflow_id
