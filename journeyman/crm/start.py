"""Starting the CRM sync workflow with the worker: once per deployment, idempotently."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from journeyman.crm.contracts import CRM_SYNC_WORKFLOW, CRM_SYNC_WORKFLOW_ID, SyncInput
from journeyman.crm.mapping import FieldMapping
from journeyman.settings import Settings

log = logging.getLogger("journeyman.crm")


async def ensure_crm_sync(client: Client, settings: Settings) -> bool:
    """Start the `crm-sync` workflow unless it runs already; True if a CRM is configured.

    Every worker may call this at start-up: the fixed id and `USE_EXISTING` make all but one
    call a no-op. With `JOURNEYMAN_CRM=none` nothing starts; changes are still written to the
    outbox (one row per contact at most), so connecting a CRM later pushes every contact that
    changed meanwhile. Raises `MappingError` for a bad `JOURNEYMAN_CRM_FIELDS`.
    """
    FieldMapping.from_settings(settings)
    if settings.crm == "none":
        return False
    await client.start_workflow(
        CRM_SYNC_WORKFLOW,
        SyncInput(),
        id=CRM_SYNC_WORKFLOW_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A sync that was terminated by hand may be started again.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    log.info("CRM sync (%s) running as workflow %r", settings.crm, CRM_SYNC_WORKFLOW_ID)
    return True
