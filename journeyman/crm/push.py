"""One outbound push: the due outbox rows to the CRM in one batch call, then pending tasks.

What "nothing lost" rests on:
- the outbox row is read before the contact's values, and deleted after the call only if its
  `changed_at` has not moved. A change committed at any moment during the push either is in
  the values sent, or moved `changed_at`, and so keeps the row for the next push;
- a whole-call failure (429, 5xx, a timeout) leaves every row pending and raises: the sync
  workflow's activity retries, and nothing is marked done that did not reach the CRM;
- a refusal (a 4xx for the call, or a per-contact validation error) parks the row as
  `failed` with the CRM's words, until the contact changes again: retrying the same values
  would only be refused again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.crm.base import (
    CrmConnector,
    CrmContact,
    CrmError,
    CrmRejected,
    CrmTaskRequest,
    UpsertOutcome,
)
from journeyman.crm import outbox
from journeyman.crm.mapping import EMAIL, SCORE, FieldMapping
from journeyman.crm.values import local_value
from journeyman.scoring.store import current_score
from persistence import Contact, CrmFieldState, CrmOutbox, CrmTask, Database
from persistence.models import as_utc

TASK_PENDING = "pending"
TASK_CREATED = "created"
TASK_FAILED = "failed"
# A task is due this long after the notification (the rep sees it in today's queue).
TASK_DUE_AFTER = timedelta(hours=1)


@dataclass
class PushReport:
    pushed: int = 0
    failed: int = 0
    more_due: bool = False
    tasks_created: int = 0
    tasks_failed: int = 0
    next_due_at: datetime | None = None
    # The whole call failed and is to be retried (the error to raise after recording it).
    retry: CrmError | None = None


@dataclass
class _Row:
    """A due contact as the push read it: the outbox `changed_at` first, then its values."""

    contact_id: str
    changed_at: datetime
    contact: CrmContact | None
    problem: str | None = None
    locals_sent: list[str] = field(default_factory=list)


class Pusher:
    def __init__(
        self,
        *,
        database: Database,
        connector: CrmConnector,
        mapping: FieldMapping,
        window: timedelta,
        batch_size: int,
        half_life: timedelta,
    ) -> None:
        self.database = database
        self.connector = connector
        self.mapping = mapping
        self.window = window
        self.batch_size = max(1, min(batch_size, connector.max_batch))
        self.half_life = half_life

    async def push(self, now: datetime) -> PushReport:
        report = PushReport()
        rows, report.more_due = await self._read_due(now)
        sendable = [row for row in rows if row.contact is not None]
        for row in rows:
            if row.problem is not None:
                await self._record(row, row.problem, final=True)
                report.failed += 1
        if sendable:
            try:
                outcomes = await self.connector.upsert_contacts(
                    [row.contact for row in sendable if row.contact is not None]
                )
            except CrmRejected as err:
                for row in sendable:
                    await self._record(row, f"{self.connector.name}: {err}", final=True)
                report.failed += len(sendable)
            except CrmError as err:
                for row in sendable:
                    await self._record(row, f"{self.connector.name}: {err}", final=False)
                report.retry = err
                return report
            else:
                pushed, failed = await self._settle(sendable, outcomes)
                report.pushed += pushed
                report.failed += failed
        # Go again at once only if this batch was full and moved something (a CRM that
        # answers nothing for a contact must not turn the loop into a busy one).
        report.more_due = report.more_due and report.pushed + report.failed > 0
        created, failed_tasks, retry = await self._create_tasks(now)
        report.tasks_created, report.tasks_failed, report.retry = created, failed_tasks, retry
        async with self.database.session() as session:
            report.next_due_at = await outbox.next_due_at(session, window=self.window)
        return report

    # ----- reading ---------------------------------------------------------------------

    async def _read_due(self, now: datetime) -> tuple[list[_Row], bool]:
        async with self.database.session() as session:
            due = await outbox.due_rows(session, now=now, window=self.window, limit=self.batch_size)
            # Read the marks before the values (see the module docstring): copy them out now.
            marks = [(row.contact_id, row.changed_at) for row in due]
            rows: list[_Row] = []
            emails: set[str] = set()
            for contact_id, changed_at in marks:
                row = await self._read_one(session, contact_id, changed_at, now)
                email = (row.contact.email or "").lower() if row.contact else ""
                if email and email in emails:
                    # Two of our contacts share an address, and the CRM upserts by address:
                    # one call may name it once. This one goes in the next push.
                    continue
                emails.add(email)
                rows.append(row)
        return rows, len(marks) == self.batch_size

    async def _read_one(
        self, session: AsyncSession, contact_id: str, changed_at: datetime, now: datetime
    ) -> _Row:
        contact = await session.get(Contact, contact_id, populate_existing=True)
        if contact is None:
            return _Row(contact_id, changed_at, None, problem="the contact no longer exists")
        if not contact.email and not contact.crm_id:
            return _Row(
                contact_id, changed_at, None, problem="no email to find the contact in the CRM"
            )
        states = await _field_states(session, contact_id)
        score = await current_score(session, contact_id, now, self.half_life)
        properties: dict[str, str | int | float | bool | None] = {}
        sent: list[str] = []
        for entry in self.mapping.pushed:
            source = states.get(entry.local)
            value = local_value(contact, entry, score)
            if entry.direction == "both" and source != "local":
                # Its latest value came from the CRM (or never changed here): the CRM has it.
                continue
            if value is None and source is None and entry.local != SCORE:
                # Never set here: sending null would clear what the CRM may hold.
                continue
            if entry.local == SCORE and score is None:
                continue
            if entry.local == EMAIL and value is None:
                continue
            properties[entry.remote] = value
            sent.append(entry.local)
        crm_contact = CrmContact(
            contact_id=contact_id,
            email=contact.email,
            crm_id=contact.crm_id,
            properties=properties,
        )
        return _Row(contact_id, changed_at, crm_contact, locals_sent=sent)

    # ----- settling ----------------------------------------------------------------------

    async def _settle(
        self, rows: Sequence[_Row], outcomes: Sequence[UpsertOutcome]
    ) -> tuple[int, int]:
        by_contact = {outcome.contact_id: outcome for outcome in outcomes}
        pushed = failed = 0
        for row in rows:
            outcome = by_contact.get(row.contact_id)
            if outcome is None:
                await self._record(row, f"{self.connector.name}: no answer for it", final=False)
                continue
            if outcome.error is not None:
                await self._record(row, f"{self.connector.name}: {outcome.error}", final=True)
                failed += 1
                continue
            async with self.database.session() as session:
                if outcome.crm_id:
                    await session.exec(
                        update(Contact)
                        .where(col(Contact.contact_id) == row.contact_id)
                        .values(crm_id=outcome.crm_id)
                    )
                await outbox.settle_pushed(
                    session, contact_id=row.contact_id, changed_at=row.changed_at
                )
                await session.commit()
            pushed += 1
        return pushed, failed

    async def _record(self, row: _Row, error: str, *, final: bool) -> None:
        async with self.database.session() as session:
            await outbox.record_error(
                session,
                contact_id=row.contact_id,
                changed_at=row.changed_at,
                error=error,
                final=final,
            )
            await session.commit()

    # ----- tasks -------------------------------------------------------------------------

    async def _create_tasks(self, now: datetime) -> tuple[int, int, CrmError | None]:
        """Create the pending sales tasks whose contact the CRM knows (or can never learn:
        no email and no pending push); the rest wait for the contact's push."""
        async with self.database.session() as session:
            statement = (
                select(CrmTask, Contact)
                .join(Contact, col(Contact.contact_id) == col(CrmTask.contact_id))
                .where(col(CrmTask.status) == TASK_PENDING)
                .order_by(col(CrmTask.created_at))
                .limit(self.batch_size)
            )
            candidates = list((await session.exec(statement)).all())
            waiting = set(
                (
                    await session.exec(
                        select(CrmOutbox.contact_id).where(
                            col(CrmOutbox.contact_id).in_([c.contact_id for _t, c in candidates]),
                            col(CrmOutbox.status) == outbox.PENDING,
                        )
                    )
                ).all()
            )
        created = failed = 0
        for task, contact in candidates:
            if contact.crm_id is None and contact.contact_id in waiting:
                continue
            request = CrmTaskRequest(
                task_id=task.id,
                contact_id=contact.contact_id,
                crm_id=contact.crm_id,
                email=contact.email,
                owner_id=_owner(contact),
                subject=task.subject,
                body=task.body,
                due_at=as_utc(task.created_at) + TASK_DUE_AFTER,
            )
            try:
                crm_task_id = await self.connector.create_task(request)
            except CrmRejected as err:
                await self._finish_task(task.id, TASK_FAILED, now, error=str(err))
                failed += 1
                continue
            except CrmError as err:
                await self._note_task_error(task.id, str(err))
                return created, failed, err
            await self._finish_task(task.id, TASK_CREATED, now, crm_task_id=crm_task_id)
            created += 1
        return created, failed, None

    async def _finish_task(
        self,
        task_id: str,
        status: str,
        now: datetime,
        *,
        crm_task_id: str | None = None,
        error: str | None = None,
    ) -> None:
        async with self.database.session() as session:
            await session.exec(
                update(CrmTask)
                .where(col(CrmTask.id) == task_id, col(CrmTask.status) == TASK_PENDING)
                .values(
                    status=status,
                    crm_task_id=crm_task_id,
                    last_error=(error or None) and error[: outbox.ERROR_MAX],
                    attempts=col(CrmTask.attempts) + 1,
                    done_at=now,
                )
            )
            await session.commit()

    async def _note_task_error(self, task_id: str, error: str) -> None:
        async with self.database.session() as session:
            await session.exec(
                update(CrmTask)
                .where(col(CrmTask.id) == task_id)
                .values(attempts=col(CrmTask.attempts) + 1, last_error=error[: outbox.ERROR_MAX])
            )
            await session.commit()


async def _field_states(session: AsyncSession, contact_id: str) -> dict[str, str]:
    rows = await session.exec(
        select(CrmFieldState.field, CrmFieldState.source).where(
            col(CrmFieldState.contact_id) == contact_id
        )
    )
    return {name: source for name, source in rows.all()}


def _owner(contact: Contact) -> str | None:
    owner = (contact.attributes or {}).get("hubspot_owner_id")
    return str(owner) if owner not in (None, "") else None
