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
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.crm.base import CrmConnector, CrmRateLimited
from activities.email import DeliveryUncertainError, Mailer, build_email, sender_domain
from activities.parts import WorkerParts
from activities.rendering import RenderedEmail, TemplateRenderer
from journeyman.crm.contracts import PUSH_DUE, PushRequest, PushResult
from journeyman.crm.mapping import EMAIL, FieldMapping
from journeyman.crm.outbox import mark_changed
from journeyman.crm.push import TASK_PENDING, Pusher
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
    same states as `send_message` (a retry that finds it `sending` does not resend).
    """

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        renderer: TemplateRenderer,
        mailer: Mailer,
        clock: Clock = _utcnow,
    ) -> None:
        self.database = database
        self.settings = settings
        self.renderer = renderer
        self.mailer = mailer
        self.clock = clock
        self.half_life = timedelta(days=settings.score_half_life_days)

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
        if not self.settings.sales_email:
            return "skipped: no_sales_email"
        message_id = f"{request.notification_id}:sales"
        taken, answer = await self._claim(request, message_id, rendered, now)
        if not taken:
            return answer
        message = build_email(
            message_id=message_id,
            sender=self.settings.email_from,
            recipient=self.settings.sales_email,
            rendered=rendered,
            domain=sender_domain(self.settings.email_from),
            date=now,
        )
        try:
            await self.mailer.send(message)
        except DeliveryUncertainError as err:
            activity.logger.warning("Sales email %s is uncertain: %s", message_id, err)
            await self._set(message_id, "sending", status="failed", reason="uncertain_delivery")
            return "failed: uncertain_delivery"
        except ApplicationError as err:
            if err.type != ERR_PERMANENT_SEND:
                await self._set(message_id, "sending", status="retrying", reason=str(err)[:200])
                raise
            # Refused for good: recorded; the journey goes on (the CRM task still tells sales).
            await self._set(message_id, "sending", status="failed", reason=str(err)[:200])
            return f"failed: {err.message}"[:REASON_MAX]
        except Exception as err:
            await self._set(
                message_id,
                "sending",
                status="retrying",
                reason=f"{type(err).__name__}: {err}"[:200],
            )
            raise
        await self._set(
            message_id, "sending", status="sent", reason=None, sent_at=max(now, _utcnow())
        )
        return "sent"

    async def _claim(
        self, request: SalesNotification, message_id: str, rendered: RenderedEmail, now: datetime
    ) -> tuple[bool, str]:
        """(True, "") when this attempt may send; else (False, what an earlier one did)."""
        async with self.database.session() as session:
            row = await session.get(Message, message_id)
        if row is not None and row.status != "retrying":
            return False, await self._settle(row)
        fields: dict[str, Any] = {
            "status": "sending",
            "to_address": self.settings.sales_email[:320],
            "subject": rendered.subject[:998],
            "created_at": now,
        }
        if row is not None:
            if await self._set(message_id, "retrying", attempts=row.attempts + 1, **fields):
                return True, ""
        else:
            try:
                async with self.database.session() as session:
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
                    await session.commit()
                return True, ""
            except IntegrityError:
                pass
        async with self.database.session() as session:
            latest = await session.get(Message, message_id)
        if latest is None:
            raise RuntimeError(f"message {message_id} vanished while claiming it")
        return False, await self._settle(latest)

    async def _settle(self, row: Message) -> str:
        if row.status == "sending":
            # An earlier attempt may have handed it over, then died: never send twice.
            await self._set(row.message_id, "sending", status="failed", reason="uncertain_delivery")
            return "failed: uncertain_delivery"
        if row.status in ("sent", "delivered", "opened", "clicked"):
            return "already_sent"
        return f"{row.status}: {row.reason}"[:REASON_MAX] if row.reason else row.status

    async def _set(self, message_id: str, from_status: str, **values: Any) -> bool:
        async with self.database.session() as session:
            result = await session.exec(
                update(Message)
                .where(col(Message.message_id) == message_id, col(Message.status) == from_status)
                .values(**values)
            )
            await session.commit()
        return bool(result.rowcount == 1)


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
