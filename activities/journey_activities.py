"""The activities journeys call: send a message, read a contact, record the lifecycle, hand on.

The worker builds one `JourneyActivities` with its dependencies and registers its methods.

Sending claims the message id in the database before the provider call, so a message goes out
at most once per step of an enrollment, whatever retries, replays and crashes happen. The
`messages.status` of a message id moves like this:

    (no row) --claim--> sending --SMTP accepted--> sent
                        sending --SMTP failed, nothing delivered--> retrying --claim--> sending
                        sending --5xx / invalid--> failed
    (no row) --no address / channel--> suppressed

A retry that finds `sending` cannot know whether the earlier attempt's provider call went
through (the process died, or the connection broke after the message was handed over), so it
records `failed: uncertain_delivery` and sends nothing. Never sending twice is the promise;
an occasional lost message, visible in the message log, is the price.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import DeliveryUncertainError, Mailer, build_email, sender_domain
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact, Database, Enrollment, EnrollmentStep, Message
from workflows.contracts import (
    ERR_PERMANENT_SEND,
    ERR_TEMPLATE,
    READ_CONTACT,
    RECORD_LIFECYCLE,
    SEND_MESSAGE,
    START_JOURNEY,
    ContactRequest,
    ContactSnapshot,
    LifecycleAck,
    LifecycleRecord,
    SendRequest,
    SendResult,
    StartJourneyRequest,
    StartJourneyResult,
)

SENDING = "sending"
RETRYING = "retrying"
UNCERTAIN_DELIVERY = "uncertain_delivery"
REASON_MAX = 200

FinalStatus = Literal["sent", "suppressed", "failed"]
Starter = Callable[[StartJourneyRequest], Awaitable[StartJourneyResult]]


@dataclass(frozen=True)
class _Outgoing:
    """An email ready for the provider; built before the claim, so bad templates claim nothing."""

    message: EmailMessage
    to_address: str
    subject: str
    provider_message_id: str


class JourneyActivities:
    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        renderer: TemplateRenderer,
        mailer: Mailer,
        starter: Starter,
    ) -> None:
        self.database = database
        self.settings = settings
        self.renderer = renderer
        self.mailer = mailer
        self.starter = starter
        self.message_id_domain = sender_domain(settings.email_from)

    # ----- send_message ------------------------------------------------------------------

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        row = await self._find_message(request.message_id)
        if row is not None and row.status != RETRYING:
            return await self._settle(row)
        if request.channel != "email":
            return await self._record_outcome(request, "suppressed", "unsupported_channel")
        contact = await self._find_contact(request.contact_id)
        if contact is None or not (contact.email or "").strip():
            return await self._record_outcome(request, "suppressed", "no_address")
        try:
            outgoing = self._compose(request, contact)
        except ValueError as err:  # the address cannot be a header (say, it holds a newline)
            activity.logger.warning("Cannot build %s: %s", request.message_id, err)
            return await self._record_outcome(request, "failed", "invalid_address")
        except ApplicationError as err:
            if err.type == ERR_TEMPLATE:
                # Logged in the message table too; the error itself fails the step.
                await self._record_outcome(request, "failed", _describe(err))
            raise
        if not await self._claim(request, outgoing, retrying=row is not None):
            # Another attempt claimed it between our read and our claim.
            return await self._settle(await self._reread(request.message_id))
        return await self._deliver(request, outgoing)

    def _compose(self, request: SendRequest, contact: Contact) -> _Outgoing:
        address = (contact.email or "").strip()
        context = self.renderer.context(
            contact=_snapshot(contact),
            event=request.trigger,
            journey=request.journey,
            step=request.step,
            step_context=request.context,
        )
        rendered = self.renderer.render_email(request.template, context)
        message = build_email(
            message_id=request.message_id,
            sender=self.settings.email_from,
            recipient=address,
            rendered=rendered,
            domain=self.message_id_domain,
        )
        return _Outgoing(
            message=message,
            to_address=address,
            subject=rendered.subject,
            provider_message_id=str(message["Message-ID"]),
        )

    async def _claim(self, request: SendRequest, outgoing: _Outgoing, *, retrying: bool) -> bool:
        """Take the message id for this attempt; False if another attempt holds it."""
        fields: dict[str, Any] = {
            "status": SENDING,
            "to_address": outgoing.to_address,
            "subject": outgoing.subject[:998],
            "provider_message_id": outgoing.provider_message_id,
        }
        if retrying:
            return await self._transition(
                request.message_id, RETRYING, attempts=col(Message.attempts) + 1, **fields
            )
        return await self._insert_message(request, attempts=1, **fields)

    async def _deliver(self, request: SendRequest, outgoing: _Outgoing) -> SendResult:
        message_id = request.message_id
        try:
            await self.mailer.send(outgoing.message)
        except DeliveryUncertainError as err:
            activity.logger.warning("Delivery of %s is uncertain: %s", message_id, err)
            await self._transition(message_id, SENDING, status="failed", reason=UNCERTAIN_DELIVERY)
            return SendResult(message_id=message_id, status="failed", reason=UNCERTAIN_DELIVERY)
        except Exception as err:
            if isinstance(err, ApplicationError) and err.type == ERR_PERMANENT_SEND:
                await self._transition(message_id, SENDING, status="failed", reason=_describe(err))
                raise
            # Nothing reached the provider: hand the id back so Temporal's retry may send.
            # (A cancellation is a BaseException and skips this: the row stays `sending`,
            # because the provider call may have gone through.)
            await self._transition(message_id, SENDING, status=RETRYING, reason=_describe(err))
            raise
        sent_at = datetime.now(UTC)
        # Unconditional on purpose: if a later attempt already gave up on this one as
        # uncertain, the row should still end up telling the truth.
        await self._update_message(message_id, status="sent", reason=None, sent_at=sent_at)
        return SendResult(message_id=message_id, status="sent", sent_at=sent_at)

    async def _settle(self, row: Message) -> SendResult:
        """Answer for a message id an earlier attempt already claimed, without sending."""
        if row.status != SENDING:
            return _result(row)
        # The earlier attempt may have handed the message over, then died.
        activity.logger.warning("Message %s was left mid-send; not resending", row.message_id)
        if await self._transition(
            row.message_id, SENDING, status="failed", reason=UNCERTAIN_DELIVERY
        ):
            return SendResult(message_id=row.message_id, status="failed", reason=UNCERTAIN_DELIVERY)
        latest = await self._reread(row.message_id)
        if latest.status == SENDING:
            raise RuntimeError(f"message {row.message_id} changed while settling it")
        return _result(latest)

    async def _reread(self, message_id: str) -> Message:
        """The row another attempt just wrote; a retry sorts out the unlikely races."""
        row = await self._find_message(message_id)
        if row is None or row.status == RETRYING:
            raise RuntimeError(f"message {message_id} changed under this attempt")
        return row

    async def _record_outcome(
        self, request: SendRequest, status: FinalStatus, reason: str
    ) -> SendResult:
        """Record a send that ended without a provider call (suppressed, or unbuildable)."""
        written = await self._insert_message(request, status=status, reason=reason) or (
            await self._transition(request.message_id, RETRYING, status=status, reason=reason)
        )
        if not written:
            return await self._settle(await self._reread(request.message_id))
        return SendResult(message_id=request.message_id, status=status, reason=reason)

    # ----- message rows ------------------------------------------------------------------

    async def _find_message(self, message_id: str) -> Message | None:
        async with self.database.session() as session:
            return await session.get(Message, message_id)

    async def _insert_message(self, request: SendRequest, **fields: Any) -> bool:
        """Insert the row for this message id; False if it already exists."""
        row = Message(
            message_id=request.message_id,
            workflow_id=request.workflow_id,
            run_id=request.run_id,
            journey=request.journey,
            step=request.step,
            contact_id=request.contact_id,
            channel=request.channel,
            template=request.template,
            **fields,
        )
        return await self.database.insert_once(row)

    async def _transition(self, message_id: str, from_status: str, **values: Any) -> bool:
        """Compare-and-set on the status, so two attempts never both take a message id."""
        statement = (
            update(Message)
            .where(col(Message.message_id) == message_id, col(Message.status) == from_status)
            .values(**values)
        )
        async with self.database.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return result.rowcount == 1

    async def _update_message(self, message_id: str, **values: Any) -> None:
        statement = update(Message).where(col(Message.message_id) == message_id).values(**values)
        async with self.database.session() as session:
            await session.exec(statement)
            await session.commit()

    # ----- read_contact ------------------------------------------------------------------

    @activity.defn(name=READ_CONTACT)
    async def read_contact(self, request: ContactRequest) -> ContactSnapshot:
        contact = await self._find_contact(request.contact_id)
        if contact is None:
            return ContactSnapshot(contact_id=request.contact_id, exists=False)
        return _snapshot(contact)

    async def _find_contact(self, contact_id: str) -> Contact | None:
        async with self.database.session() as session:
            return await session.get(Contact, contact_id)

    # ----- record_lifecycle --------------------------------------------------------------

    @activity.defn(name=RECORD_LIFECYCLE)
    async def record_lifecycle(self, record: LifecycleRecord) -> LifecycleAck:
        """Write one lifecycle fact; `recorded=False` means an earlier attempt already did.

        It runs as a local activity, so it may run again after a worker restart: every
        branch is safe to repeat.
        """
        if record.kind == "entered":
            return LifecycleAck(recorded=await self._enter(record))
        if record.kind == "step":
            return LifecycleAck(recorded=await self._step(record))
        return LifecycleAck(recorded=await self._end(record))

    async def _enter(self, record: LifecycleRecord) -> bool:
        row = Enrollment(
            run_id=record.run_id,
            workflow_id=record.workflow_id,
            journey=record.journey,
            version=record.version,
            contact_id=record.contact_id,
            key=record.key,
            status=record.status,
            trigger_event_id=record.trigger_event_id,
            entered_at=record.at,
        )
        return await self.database.insert_once(row)

    async def _step(self, record: LifecycleRecord) -> bool:
        step = record.step or "(unnamed)"
        row = EnrollmentStep(
            run_id=record.run_id,
            journey=record.journey,
            step=step,
            kind=record.step_kind or "step",
            outcome=(record.outcome or "")[:REASON_MAX],
            at=record.at,
        )
        # The step row and the enrollment's current step commit together: a repeat finds
        # the step row and changes nothing, so a stale repeat cannot move current_step back.
        async with self.database.session() as session:
            try:
                session.add(row)
                await session.flush()
                await session.exec(
                    update(Enrollment)
                    .where(col(Enrollment.run_id) == record.run_id)
                    .values(current_step=step)
                )
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    async def _end(self, record: LifecycleRecord) -> bool:
        statement = (
            update(Enrollment)
            .where(col(Enrollment.run_id) == record.run_id, col(Enrollment.ended_at).is_(None))
            .values(
                status=record.status,
                ended_by=(record.outcome or "")[:REASON_MAX] or None,
                ended_at=record.at,
                # The step it was in when a goal or exit ended it; else the last step done.
                **({"current_step": record.step} if record.step else {}),
            )
        )
        async with self.database.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return result.rowcount == 1

    # ----- start_journey -----------------------------------------------------------------

    @activity.defn(name=START_JOURNEY)
    async def start_journey(self, request: StartJourneyRequest) -> StartJourneyResult:
        return await self.starter(request)


def _snapshot(contact: Contact) -> ContactSnapshot:
    return ContactSnapshot(
        contact_id=contact.contact_id,
        exists=True,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone,
        locale=contact.locale,
        attributes=dict(contact.attributes),
    )


def _result(row: Message) -> SendResult:
    sent_at = row.sent_at
    if sent_at is not None and sent_at.tzinfo is None:  # SQLite hands back naive datetimes
        sent_at = sent_at.replace(tzinfo=UTC)
    # Statuses written after a send (delivered, bounced... from provider feedback) still
    # mean the step sent its message.
    status: FinalStatus = "sent"
    if row.status == "suppressed":
        status = "suppressed"
    elif row.status == "failed":
        status = "failed"
    return SendResult(message_id=row.message_id, status=status, reason=row.reason, sent_at=sent_at)


def _describe(err: BaseException) -> str:
    if isinstance(err, ApplicationError) and err.type:
        text = f"{err.type}: {err.message}"
    else:
        text = f"{type(err).__name__}: {err}"
    return text[:REASON_MAX]
