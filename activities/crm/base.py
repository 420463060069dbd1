"""The CRM connector interface: what the CRM sync needs from any CRM.

A connector speaks one CRM's API and sorts its answers into the outcomes below; it stores
nothing and never retries itself. The sync activities (`activities/crm_sync.py`) turn the
errors into Temporal retries or recorded failures:

- `CrmRateLimited`: the CRM said 429; retry no sooner than `retry_after` seconds.
- `CrmUnavailable`: 5xx, a timeout or a refused connection; retry with backoff.
- `CrmRejected`: a 4xx for the whole call (a validation error, a bad token); not retried,
  recorded on every contact or task of the call with the CRM's own words.
- A validation error for one contact of a batch comes back on its `UpsertOutcome.error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# A remote property value as CRMs take them: HubSpot wants strings, numbers or null.
PropertyValue = str | int | float | bool | None


@dataclass
class CrmContact:
    """One contact to create or update, identified by email (and `crm_id` once known)."""

    contact_id: str
    email: str | None
    crm_id: str | None
    # Remote property name -> value, after the field mapping.
    properties: dict[str, PropertyValue] = field(default_factory=dict)


@dataclass
class UpsertOutcome:
    contact_id: str
    # The CRM's id of the contact, when the call succeeded for it.
    crm_id: str | None = None
    # Why the CRM refused this one contact (recorded, not retried).
    error: str | None = None


@dataclass
class CrmTaskRequest:
    """A task for the contact's owner, associated with the contact."""

    task_id: str
    contact_id: str
    crm_id: str | None
    email: str | None
    owner_id: str | None
    subject: str
    body: str
    due_at: datetime


class CrmError(Exception):
    """Base of the errors a connector raises for a whole call."""


class CrmRateLimited(CrmError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CrmUnavailable(CrmError):
    pass


class CrmRejected(CrmError):
    pass


class CrmConnector(Protocol):
    # Shown in logs and the message of recorded failures ("hubspot", "webhook").
    name: str
    # The most contacts one `upsert_contacts` call takes.
    max_batch: int

    async def upsert_contacts(self, contacts: Sequence[CrmContact]) -> list[UpsertOutcome]:
        """Create or update every contact (at most `max_batch`); one outcome per contact, in
        any order. Raises a `CrmError` when the call as a whole failed."""
        ...

    async def create_task(self, task: CrmTaskRequest) -> str:
        """Create the task, associated with the contact; returns the CRM's task id."""
        ...


@dataclass
class InboundChange:
    """One field of one contact changed in the CRM, as an inbound webhook reports it."""

    # The CRM's id of this change (its webhook event id): applying it is idempotent on this.
    event_id: str
    # Who: our contact id when the payload names it (generic format), else the CRM's id.
    contact_id: str | None
    crm_id: str | None
    # The remote property name and its new value.
    remote_field: str
    value: PropertyValue
    occurred_at: datetime


class InvalidInboundPayload(ValueError):
    """An inbound CRM webhook body that is not in the expected format (answer it with a 400)."""
