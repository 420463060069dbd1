"""The CRM sync workflow's boundary: its activity's name and dataclasses.

No `from __future__ import annotations` here, on purpose: the workflow sandbox resolves these
dataclasses' field types at run time (see workflows/contracts.py).
"""

from dataclasses import dataclass
from datetime import datetime

PUSH_DUE = "crm_push_due"
# The one sync workflow of a deployment.
CRM_SYNC_WORKFLOW_ID = "crm-sync"
CRM_SYNC_WORKFLOW = "crm_sync"


@dataclass
class SyncInput:
    # Iterations done by earlier runs of this workflow id (continue-as-new carries it on).
    iterations: int = 0


@dataclass
class PushRequest:
    # The workflow's clock: which outbox rows are due is decided against it, so tests on the
    # time-skipping server see skipped time.
    now: datetime


@dataclass
class PushResult:
    pushed: int = 0
    # Contacts the CRM refused (recorded on their outbox row, not retried).
    failed: int = 0
    tasks_created: int = 0
    tasks_failed: int = 0
    # More is due right now (a full batch went): call again without sleeping.
    more_due: bool = False
    # When to look again at the latest: the next pending row's due time, or `now` plus the
    # idle poll interval.
    next_check_at: datetime | None = None
