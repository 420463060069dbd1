"""Erasing a contact on request (GDPR art. 17): end its workflows, then remove its data.

What happens, in this order:

1. Its running workflows are terminated (not signalled: a terminated run takes no further
   step, so it sends nothing more): every enrollment the database lists as active, the
   deterministic id of every unkeyed journey, its lead scorer `lead-score:<id>`, and, where
   the server's visibility store answers, every running workflow whose `ContactId` is it.
2. In one transaction, every row about it goes: the contact, its events, lead score and
   score history, segment memberships, bulk list items, CRM outbox, field state, tasks and
   inbound events are deleted. Messages, their engagements and enrollments are kept for the
   stats (counts per journey, step, channel and status) but anonymised: the contact id, in
   every column and inside message and workflow ids, becomes the pseudonym; addresses,
   subjects, links, provider ids, provider details and event ids are cleared.
3. The erasure is recorded in `erasures` under the pseudonym, with the rows touched per
   table: no personal data.

The pseudonym is `erased:` + the first 16 hex digits of HMAC-SHA256(JOURNEYMAN_SECRET_KEY,
contact id): stable, so a repeated request finds its record, and not reversible without the
key. A repeated request for a contact no longer there sweeps again and answers the same
record: an activity already running when its workflow was terminated still finishes its call
(a send up to a minute, a scoring step up to 30 s) and may write a row after the sweep, so
repeat the request after a minute to be sure. An id never seen and never erased is unknown.
An erased id that comes back in an event is simply a new, bare contact.

Temporal keeps the histories of closed runs, with the contact id (workflow ids and the
`ContactId` search attribute), until the namespace's retention period ends: see SECURITY.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeyman.scoring.contracts import scorer_workflow_id
from journeyman.settings import Settings
from persistence import Contact, Database, Enrollment, Message
from persistence.models import (
    BulkListItem,
    CrmFieldState,
    CrmInboundEvent,
    CrmOutbox,
    CrmTask,
    Engagement,
    Erasure,
    EventRecord,
    LeadScore,
    ScoreChange,
    SegmentMembership,
)
from workflows import catalog
from workflows.contracts import workflow_id_for

logger = logging.getLogger("journeyman.erasure")

PSEUDONYM_PREFIX = "erased:"
ERASED = "[erased]"
WORKFLOWS_TERMINATED = "workflows_terminated"
RPC_TIMEOUT = timedelta(seconds=10)
# Ids safe to quote in a visibility query as they are; others rely on the database's list.
_QUERYABLE = re.compile(r"^[A-Za-z0-9._@+-]+$")
# Tables whose rows about the contact are deleted outright, keyed by their contact column.
_DELETED: tuple[tuple[str, Any], ...] = (
    ("events", EventRecord.contact_id),
    ("lead_scores", LeadScore.contact_id),
    ("score_changes", ScoreChange.contact_id),
    ("segment_memberships", SegmentMembership.contact_id),
    ("bulk_list_items", BulkListItem.contact_id),
    ("crm_outbox", CrmOutbox.contact_id),
    ("crm_field_state", CrmFieldState.contact_id),
    ("crm_tasks", CrmTask.contact_id),
    ("crm_inbound_events", CrmInboundEvent.contact_id),
)


class UnknownContactError(LookupError):
    """Neither a contact by that id nor an erasure of one."""

    def __init__(self, contact_id: str) -> None:
        super().__init__(f"unknown contact '{contact_id}' (and none erased by that id)")
        self.contact_id = contact_id


def pseudonym(contact_id: str, secret: str) -> str:
    """`erased:<16 hex>`: the same for the same id and key, meaningless without the key."""
    digest = hmac.new(secret.encode(), contact_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


class ErasureService:
    def __init__(self, *, client: Client, database: Database, settings: Settings) -> None:
        self._client = client
        self._database = database
        self._settings = settings

    async def erase(self, contact_id: str) -> Erasure:
        """Erase the contact (see the module docstring); the erasure's record."""
        alias = pseudonym(contact_id, self._settings.secret_key)
        requested_at = datetime.now(UTC)
        async with self._database.session() as session:
            contact = await session.get(Contact, contact_id)
            earlier = await session.get(Erasure, alias)
        if contact is None and earlier is None:
            raise UnknownContactError(contact_id)
        # Workflows first: once they are gone, nothing writes new rows about the contact
        # (bar an activity already running, which a repeated request sweeps up).
        terminated = await self._end_workflows(contact_id)
        secrets = [s for s in (contact.email, contact.phone) if s] if contact else []
        async with self._database.session() as session:
            counts = await _sweep(session, contact_id, alias, secrets, requested_at)
            counts[WORKFLOWS_TERMINATED] = terminated
            record = await session.get(Erasure, alias, populate_existing=True)
            if record is None:
                record = Erasure(pseudonym=alias, requested_at=requested_at, counts={})
            record.counts = _added(record.counts, counts)
            record.completed_at = datetime.now(UTC)
            session.add(record)
            await session.commit()
            await session.refresh(record)
        logger.info("Erased contact as %s: %s", alias, counts)
        return record

    async def _end_workflows(self, contact_id: str) -> int:
        ids = set(await self._active_enrollments(contact_id))
        ids.update(workflow_id_for(cls.name, contact_id) for cls in catalog.latest())
        ids.add(scorer_workflow_id(contact_id))
        ids.update(await self._listed(contact_id))
        ended = 0
        for workflow_id in sorted(ids):
            if await self._terminate(workflow_id):
                ended += 1
        return ended

    async def _active_enrollments(self, contact_id: str) -> list[str]:
        query = select(Enrollment.workflow_id).where(
            Enrollment.contact_id == contact_id, Enrollment.status == "active"
        )
        async with self._database.session() as session:
            return list((await session.exec(query)).all())

    async def _listed(self, contact_id: str) -> list[str]:
        """Running workflows the visibility store knows by `ContactId` (keyed enrollments
        started a moment ago, before their row was written)."""
        if not _QUERYABLE.match(contact_id):
            return []
        query = f"ContactId = '{contact_id}' AND ExecutionStatus = 'Running'"
        try:
            return [w.id async for w in self._client.list_workflows(query, limit=1000)]
        except RPCError as err:  # e.g. the time-skipping test server lists nothing
            logger.info("Visibility query unavailable (%s); using the database's list", err)
            return []

    async def _terminate(self, workflow_id: str) -> bool:
        try:
            # The reason is kept in the history: it names no one.
            await self._client.get_workflow_handle(workflow_id).terminate(
                reason="contact erased", rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False  # none running by that id
            raise
        return True


async def _sweep(
    session: AsyncSession,
    contact_id: str,
    alias: str,
    secrets: Iterable[str],
    now: datetime,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    hidden = [contact_id, *secrets]

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        for value in hidden:
            text = text.replace(value, ERASED)
        return text

    messages = (await session.exec(select(Message).where(Message.contact_id == contact_id))).all()
    engagements = 0
    for message in messages:
        old_id = message.message_id
        new_id = old_id.replace(contact_id, alias)
        result = await session.exec(
            update(Engagement)
            .where(col(Engagement.message_id) == old_id)
            .values(message_id=new_id, url=None, detail={})
        )
        engagements += result.rowcount
        await session.exec(
            update(Message)
            .where(col(Message.message_id) == old_id)
            .values(
                message_id=new_id,
                workflow_id=message.workflow_id.replace(contact_id, alias),
                contact_id=alias,
                to_address=None,
                subject=None,
                provider_message_id=None,
                links=[],
                reason=scrub(message.reason),
            )
        )
    counts["messages"] = len(messages)
    counts["engagements"] = engagements

    enrollments = (
        await session.exec(select(Enrollment).where(Enrollment.contact_id == contact_id))
    ).all()
    for enrollment in enrollments:
        ending: dict[str, Any] = {"ended_by": scrub(enrollment.ended_by)}
        if enrollment.status == "active":  # terminated above: it records no ending itself
            ending = {"status": "exited", "ended_by": "erased", "ended_at": now}
        await session.exec(
            update(Enrollment)
            .where(col(Enrollment.run_id) == enrollment.run_id)
            .values(
                workflow_id=enrollment.workflow_id.replace(contact_id, alias),
                contact_id=alias,
                key=None,
                trigger_event_id=None,
                **ending,
            )
        )
    counts["enrollments"] = len(enrollments)

    for table, column in _DELETED:
        result = await session.exec(delete(column.class_).where(column == contact_id))
        counts[table] = result.rowcount
    result = await session.exec(delete(Contact).where(col(Contact.contact_id) == contact_id))
    counts["contacts"] = result.rowcount
    return counts


def _added(before: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {key: before.get(key, 0) + more.get(key, 0) for key in sorted({*before, *more})}
