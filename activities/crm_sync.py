"""The CRM activities: the outbound push the sync workflow calls, and `notify_sales`.

`push_due` sorts a connector's errors into what Temporal does next:
- `CrmRateLimited`: a retryable `ApplicationError` whose `next_retry_delay` is the CRM's
  `Retry-After`, so the next attempt comes no sooner than the CRM asked;
- `CrmUnavailable` (5xx, timeout, refused connection): retryable, with the sync workflow's
  backoff and no attempt limit: an outage delays the sync and loses nothing (the outbox rows
  wait);
- `CrmRejected` and per-contact errors: recorded on the rows, not retried.

`notify_sales` queues the CRM task (the push creates it) and sends the internal email; it
never calls the CRM, so a CRM outage cannot hold a journey.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crm.base import CrmConnector, CrmRateLimited
from activities.email import DeliveryUncertainError, Mailer, build_email, sender_domain
from activities.message_claims import RETRYING, SENDING, MessageClaims, reclaim, settle
from activities.parts import WorkerParts
from activities.rendering import RenderedEmail, TemplateRenderer
from journeyman.crm.contracts import PUSH_DUE, PushRequest, PushResult
from journeyman.crm.mapping import EMAIL, FieldMapping
from journeyman.crm.outbox import mark_changed
from journeyman.crm.push import TASK_PENDING, Pusher
from journeyman.redaction import Redactor
from journeyman.scoring.store import current_score
from journeyman.settings import Settings
from persistence import Contact, CrmTask, Database, Message
from persistence.models import CONSENT_CHANNELS
from workflows.contracts import (
    ERR_PERMANENT_SEND,
    NOTIFY_SALES,
    ContactSnapshot,
    SalesNotification,
    SalesNotificationResult,
)
from workflows.crm_sync import CrmSync

ERR_CRM_RATE_LIMITED = "CrmRateLimited"
ERR_CRM_UNAVAILABLE = "CrmUnavailable"
# When idle, the sync looks at the outbox this often (and never more often than once a
# second, even with a zero window).
MIN_IDLE_POLL = timedelta(seconds=1)
SALES_CATEGORY = "internal"
REASON_MAX = 200

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CrmSyncActivities:
    """`push_due`, with its dependencies; one per worker."""

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        connector: CrmConnector,
        mapping: FieldMapping | None = None,
    ) -> None:
        self.window = timedelta(seconds=settings.crm_sync_window_seconds)
        self.pusher = Pusher(
            database=database,
            connector=connector,
            mapping=mapping or FieldMapping.from_settings(settings),
            window=self.window,
            batch_size=settings.crm_batch_size,
            half_life=timedelta(days=settings.score_half_life_days),
        )

    @activity.defn(name=PUSH_DUE)
    async def push_due(self, request: PushRequest) -> PushResult:
        """Push one batch of due contacts, then create pending sales tasks."""
        now = request.now.astimezone(UTC)
        report = await self.pusher.push(now)
        if report.retry is not None:
            err = report.retry
            if isinstance(err, CrmRateLimited):
                raise ApplicationError(
                    f"CRM rate limit: {err}",
                    type=ERR_CRM_RATE_LIMITED,
                    non_retryable=False,
                    next_retry_delay=timedelta(seconds=max(err.retry_after, 1.0)),
                )
            raise ApplicationError(
                f"CRM unavailable: {err}", type=ERR_CRM_UNAVAILABLE, non_retryable=False
            )
        idle = now + max(self.window, MIN_IDLE_POLL)
        next_check = idle if report.next_due_at is None else min(idle, report.next_due_at)
        return PushResult(
            pushed=report.pushed,
            failed=report.failed,
            tasks_created=report.tasks_created,
            tasks_failed=report.tasks_failed,
            more_due=report.more_due,
            next_check_at=next_check,
        )


class SalesNotifier:
    """`notify_sales`: a CRM task for the contact's owner (queued) and an internal email.

    Exactly once per notification id: the task row's id is the notification id, and the email
    is claimed as the message `<notification id>:sales` before the mailer is called, with the
    same states and the same rule as `send_message`: a claim its attempt left mid-send (dead)
    is sent again with the same Message-ID, a live attempt's is waited for, never resent.
    """

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        renderer: TemplateRenderer,
        mailer: Mailer,
        clock: Clock = _utcnow,
        claims: MessageClaims | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.renderer = renderer
        self.mailer = mailer
        self.clock = clock
        self.half_life = timedelta(days=settings.score_half_life_days)
        self.claims = claims or MessageClaims(database)
        # SMTP refusals quote addresses (and a broken server may quote our login).
        self.redact = Redactor.from_settings(settings)

    @activity.defn(name=NOTIFY_SALES)
    async def notify_sales(self, request: SalesNotification) -> SalesNotificationResult:
        now = self.clock().astimezone(UTC)
        async with self.database.session() as session:
            contact = await session.get(Contact, request.contact_id)
            score = await current_score(session, request.contact_id, now, self.half_life)
        if contact is None:
            return SalesNotificationResult(
                notification_id=request.notification_id,
                task_queued=False,
                email="skipped: unknown_contact",
            )
        # A template error is a journey definition bug: it fails the step (non-retryable).
        rendered = self.renderer.render_email(
            request.template, self._context(request, contact, score)
        )
        queued = False
        if self.settings.crm != "none":
            await self._queue_task(request, contact, rendered.text, now)
            queued = True
        email = await self._email(request, rendered, now)
        return SalesNotificationResult(
            notification_id=request.notification_id, task_queued=queued, email=email
        )

    def _context(
        self, request: SalesNotification, contact: Contact, score: float | None
    ) -> dict[str, Any]:
        snapshot = ContactSnapshot(
            contact_id=contact.contact_id,
            exists=True,
            email=contact.email,
            phone=contact.phone,
            timezone=contact.timezone,
            locale=contact.locale,
            attributes=dict(contact.attributes or {}),
            consent={channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS},
            lifecycle_stage=contact.lifecycle_stage,
        )
        context = self.renderer.context(
            contact=snapshot,
            event=None,
            journey=request.journey,
            step=request.step,
            step_context={"subject": request.subject, **request.context},
        )
        context["contact"]["score"] = round(score or 0.0, 2)
        context["contact"]["lifecycle_stage"] = contact.lifecycle_stage
        return context

    async def _queue_task(
        self, request: SalesNotification, contact: Contact, body: str, now: datetime
    ) -> None:
        task = CrmTask(
            id=request.notification_id,
            contact_id=contact.contact_id,
            journey=request.journey,
            subject=request.subject[:500],
            body=body[:10000],
            status=TASK_PENDING,
            created_at=now,
        )
        async with self.database.session() as session:
            session.add(task)
            try:
                await session.flush()
            except IntegrityError:  # an earlier attempt queued it
                await session.rollback()
                return
            if contact.crm_id is None:
                # The task needs the contact in the CRM: have the push create it first.
                await mark_changed(
                    session,
                    self.database.dialect,
                    contact_id=contact.contact_id,
                    fields=[EMAIL],
                    at=now,
                )
            await session.commit()

    # ----- the internal email ------------------------------------------------------------

    async def _email(
        self, request: SalesNotification, rendered: RenderedEmail, now: datetime
    ) -> str:
        """Send the internal email once, as journey sends are (`activities.message_claims`).

        A claim left `sending` by a dead attempt is taken over and sent again with the same
        Message-ID; a live attempt's claim is waited for, never sent twice.
        """
        if not self.settings.sales_email:
            return "skipped: no_sales_email"
        message_id = f"{request.notification_id}:sales"
        async with self.database.session() as session:
            await self.claims.one_statement_each(session)
            row = await session.get(Message, message_id)
        if row is not None and row.status == SENDING:
            row = await self.claims.take_over(row)
        if row is not None and row.status != RETRYING:
            return _answer(row)
        attempts = await self._claim(request, message_id, rendered, now, previous=row)
        if attempts is None:  # another attempt claimed it between our read and our claim
            return _answer(await self.claims.await_outcome(message_id))
        message = build_email(
            message_id=message_id,
            sender=self.settings.email_from,
            recipient=self.settings.sales_email,
            rendered=rendered,
            domain=sender_domain(self.settings.email_from),
            date=now,
        )

        async def send(session: AsyncSession, held: Message) -> str:
            return await self._send(session, held, message, now)

        outcome = await self.claims.call_locked(message_id, attempts, send)
        return _answer(outcome) if isinstance(outcome, Message) else outcome

    async def _send(
        self, session: AsyncSession, held: Message, message: EmailMessage, now: datetime
    ) -> str:
        """The SMTP call on the locked claim `held`; its outcome commits with `session`."""
        try:
            await self.mailer.send(message)
        except DeliveryUncertainError as err:
            # The server may have the whole message: not resent (as journey sends).
            activity.logger.warning(
                "Sales email %s is uncertain: %s", held.message_id, self.redact(str(err))
            )
            await settle(session, held, status="failed", reason="uncertain_delivery")
            return "failed: uncertain_delivery"
        except ApplicationError as err:
            reason = self.redact(str(err))[:REASON_MAX]
            if err.type != ERR_PERMANENT_SEND:
                await settle(session, held, status=RETRYING, reason=reason)
                raise
            # Refused for good: recorded; the journey goes on (the CRM task still tells sales).
            await settle(session, held, status="failed", reason=reason)
            return f"failed: {self.redact(err.message)}"[:REASON_MAX]
        except Exception as err:
            reason = self.redact(f"{type(err).__name__}: {err}")[:REASON_MAX]
            await settle(session, held, status=RETRYING, reason=reason)
            raise
        await settle(session, held, status="sent", reason=None, sent_at=max(now, _utcnow()))
        return "sent"

    async def _claim(
        self,
        request: SalesNotification,
        message_id: str,
        rendered: RenderedEmail,
        now: datetime,
        *,
        previous: Message | None,
    ) -> int | None:
        """Claim the email for this attempt: its `attempts`, or None if another has it.

        `previous` is the `retrying` row this attempt read: the claim moves it on only if
        nobody claimed it since.
        """
        fields: dict[str, Any] = {
            "status": SENDING,
            "to_address": self.settings.sales_email[:320],
            "subject": rendered.subject[:998],
            "created_at": now,
        }
        async with self.database.session() as session:
            # The claim is one statement, atomic on its own.
            await self.claims.one_statement_each(session)
            if previous is not None:
                taken = await session.exec(reclaim(message_id, previous, **fields))
                await session.commit()
                return previous.attempts + 1 if taken.rowcount == 1 else None
            session.add(
                Message(
                    message_id=message_id,
                    workflow_id=request.workflow_id,
                    run_id=activity.info().workflow_run_id or "",
                    journey=request.journey,
                    step=request.step,
                    contact_id=request.contact_id,
                    channel="email",
                    category=SALES_CATEGORY,
                    template=request.template,
                    attempts=1,
                    **fields,
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                return None
        return 1


def _answer(row: Message) -> str:
    """What `notify_sales` says about an email an earlier (or concurrent) attempt settled."""
    if row.status in ("sent", "delivered", "opened", "clicked"):
        return "already_sent"
    return f"{row.status}: {row.reason}"[:REASON_MAX] if row.reason else row.status


def crm_parts(
    *,
    database: Database,
    settings: Settings,
    renderer: TemplateRenderer,
    mailer: Mailer,
    connector: CrmConnector | None,
) -> WorkerParts:
    """What the CRM feature adds to the worker.

    `notify_sales` is always registered (journeys call it whether or not a CRM is set up);
    the sync workflow and `push_due` only with a connector (`JOURNEYMAN_CRM` not "none").
    Raises `MappingError` for a bad `JOURNEYMAN_CRM_FIELDS`, so the worker refuses to start.
    """
    mapping = FieldMapping.from_settings(settings)
    notifier = SalesNotifier(database=database, settings=settings, renderer=renderer, mailer=mailer)
    parts = WorkerParts(activities=[notifier.notify_sales])
    if connector is not None and settings.crm != "none":
        sync = CrmSyncActivities(
            database=database, settings=settings, connector=connector, mapping=mapping
        )
        parts.workflows.append(CrmSync)
        parts.activities.append(sync.push_due)
    return parts
