"""The activities journeys call: send a message, read a contact, hand on to another journey.

The worker builds one `JourneyActivities` with its dependencies and registers its methods (the
lifecycle records are `activities.lifecycle`'s).

A send goes through the adapter of its channel (`activities.channels`); the rules live here.
They are checked at send time, against the send's due time (`activities.policy.send_time`),
in this order, the first that applies deciding:

1. the message id is already claimed: the recorded result, and nothing is sent;
2. no adapter for the channel: `suppressed: unsupported_channel`;
3. no such contact, or no address on that channel: `suppressed: no_address`;
4. email to an address that hard-bounced (provider feedback), whatever the category:
   `suppressed: hard_bounce`; then marketing without the contact's consent on the channel:
   `suppressed: unsubscribed`; then marketing email to a dormant contact (list hygiene, see
   `workflows/reengagement.py`): `suppressed: dormant`;
5. marketing inside quiet hours (the step's or journey's, else the global ones; local to the
   contact's zone, else the journey's, else the global default): policy `defer` answers
   `deferred` with `retry_at` = the window's end, `skip` records `suppressed: quiet_hours`
   (malformed hours from a journey record `failed: invalid_quiet_hours` and fail the step);
6. the message is composed; a template error records `failed` and fails the step;
7. marketing over a frequency cap of its channel (`activities.caps`): `on_cap="skip"`
   records `suppressed: frequency_cap`, `defer` answers `deferred` with `retry_at` = when a
   slot frees. This check and the claim are one transaction under a lock on the contact, so
   concurrent journeys cannot both take the last slot; that is also why it comes after
   composing (only a composed message is claimed, so bad input claims nothing);
8. the claim, then the provider call.

A deferral writes nothing: the workflow sleeps durably until `retry_at` and calls again with
the same message id, which goes through every check afresh. Transactional sends skip 4, 5
and 7 and carry no unsubscribe link.

Claiming the message id in the database before the provider call means a message goes out
once per step of an enrollment, whatever retries, replays and crashes happen. The
`messages.status` of a message id moves like this (`attempts` counts the claims):

    (no row) --claim--> sending --provider accepted--> sent
                        sending --provider failed, nothing delivered--> retrying --claim--> sending
                        sending --permanent refusal / invalid / uncertain delivery--> failed
                        sending --its attempt died (found by a later attempt)--> retrying
    (no row) or retrying --a rule above--> suppressed
    retrying --Temporal stopped retrying (the workflow's `give_up` call)--> failed

An attempt makes its provider call inside a database transaction that holds the message row
locked (`SELECT ... FOR UPDATE` on the row it claimed, `sending` with its own `attempts`),
and records the outcome in that same transaction; a cancellation (Temporal timed the
attempt out, the enrollment ended) waits until both are done. So a `sending` row nobody
holds locked belongs to an attempt that died (SIGKILL, lost host: PostgreSQL ends a dead
client's transaction and its locks with it), or to one between its claim and its lock. A
later attempt that finds one takes the claim over (`sending` -> `retrying`, reason
`abandoned_mid_send`), checks every rule afresh and sends the message again with the same
Message-ID (and, for HTTP providers, the same Idempotency-Key), so a receiver that
de-duplicates by it keeps one. A locked row belongs to a live attempt: the later one waits
for its outcome (`SendInFlight`, retryable, if that takes over `OUTCOME_WAIT_SECONDS`) and
never calls the provider too; the older attempt re-checks under the lock, before its call,
that the claim is still its own (`attempts`), so a claim taken over is never sent by its
first owner as well. That rule's code is `activities.message_claims`, which the sales email
(`activities.crm_sync`) follows too.

What remains is the moment between the provider accepting the message and our commit of
`sent` (a kill there means the receiver gets the same Message-ID twice; tests/chaos counts
these), and a connection broken during the hand-over (`DeliveryUncertainError`: the
provider has the whole message, so it is recorded `failed: uncertain_delivery` and not
resent). SQLite has no row locks: a worker on a SQLite file checks its own calls in
progress, and relies on Temporal running one attempt at a time for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.caps import cap_frees_at, lock_contact
from activities.channels.base import ChannelSender, Outgoing
from activities.channels.email import UNSUBSCRIBE_URL, EmailSender
from activities.email import DeliveryUncertainError, Mailer, SmtpMailer
from activities.lifecycle import lifecycle_writer, send_with_records
from activities.message_claims import ERR_SEND_IN_FLIGHT as ERR_SEND_IN_FLIGHT
from activities.message_claims import LOCK_NOT_AVAILABLE as LOCK_NOT_AVAILABLE
from activities.message_claims import (
    OUTCOME_WAIT_SECONDS,
    RETRYING,
    SENDING,
    MessageClaims,
    reclaim,
    settle,
)
from activities.policy import (
    DORMANT,
    FREQUENCY_CAP,
    Hold,
    held_as_dormant,
    needs_consent,
    quiet_hold,
    send_time,
    unsubscribe_link,
)
from activities.rendering import TemplateRenderer
from activities.tracking import tracked_links
from journeyman.redaction import redact
from journeyman.scoring import decayed
from journeyman.settings import FrequencyCap, Settings
from persistence import Contact, Database, LeadScore, Message
from persistence.models import CONSENT_CHANNELS
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    ERR_PERMANENT_SEND,
    ERR_TEMPLATE,
    READ_CONTACT,
    SEND_MESSAGE,
    START_JOURNEY,
    ContactRequest,
    ContactSnapshot,
    SendRequest,
    SendResult,
    StartJourneyRequest,
    StartJourneyResult,
)

# ERR_SEND_IN_FLIGHT and LOCK_NOT_AVAILABLE (imported `as` themselves) are named on this
# module too, by the send's callers and tests.
HARD_BOUNCE = "hard_bounce"
UNCERTAIN_DELIVERY = "uncertain_delivery"
REASON_MAX = 200

FinalStatus = Literal["sent", "suppressed", "failed"]
Starter = Callable[[StartJourneyRequest], Awaitable[StartJourneyResult]]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class _Claim:
    taken: bool  # this attempt holds the message id and may call the provider
    cap_frees_at: datetime | None = None  # set when a frequency cap refused the claim
    attempts: int = 0  # the claim's `attempts`, which names it as this attempt's


class JourneyActivities(MessageClaims):
    """The activities, with their dependencies.

    A `MessageClaims` itself: its sends follow the claim rule (`take_over`, `await_outcome`,
    `call_locked`), and it is the process's one record of its sends in flight.

    `senders` maps a channel name to its adapter; email is always there: `senders["email"]`
    if given, else an `EmailSender` over `mailer` (by default SMTP from the settings).
    `clock` says when "now" is for the send rules; tests pass a fixed one.
    """

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        renderer: TemplateRenderer,
        starter: Starter,
        senders: Mapping[str, ChannelSender] | None = None,
        mailer: Mailer | None = None,
        clock: Clock = send_time,
    ) -> None:
        # Read here, not at import, so a test may shorten the wait on this module.
        super().__init__(database, outcome_wait=OUTCOME_WAIT_SECONDS)
        self.settings = settings
        self.renderer = renderer
        self.starter = starter
        email = EmailSender(
            settings=settings,
            renderer=renderer,
            mailer=mailer or SmtpMailer.from_settings(settings),
        )
        self.senders: dict[str, ChannelSender] = {"email": email, **(senders or {})}
        self.clock = clock
        self.caps = settings.caps

    # ----- send_message ------------------------------------------------------------------

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        async with _heartbeating():
            return await send_with_records(
                lifecycle_writer(self.database).submit,
                request,
                functools.partial(self._send_message, request),
            )

    async def _send_message(self, request: SendRequest) -> SendResult:
        now = self.clock().astimezone(UTC)
        if request.give_up is not None:
            return await self._give_up(request, request.give_up, now)
        # Both rows in one session: a send reads the contact unless the message has its
        # outcome already, which is the rare case (a retry after the outcome was recorded).
        row, contact = await self._find_message_and_contact(request)
        if row is not None and row.status == SENDING:
            row = await self.take_over(row)
        if row is not None and row.status != RETRYING:
            return _result(row)
        sender = self.senders.get(request.channel)
        if sender is None:
            return await self._record_outcome(request, "suppressed", "unsupported_channel", now)
        if contact is None or not sender.address(contact, request):
            return await self._record_outcome(request, "suppressed", "no_address", now)
        if request.channel == "email" and contact.email_suppressed == HARD_BOUNCE:
            # The address does not exist: not even a receipt goes there, and a re-subscribe
            # does not reopen it (a new address does).
            return await self._record_outcome(request, "suppressed", HARD_BOUNCE, now)
        if needs_consent(request) and not contact.has_consent(request.channel):
            return await self._record_outcome(request, "suppressed", "unsubscribed", now)
        if held_as_dormant(request, contact):
            return await self._record_outcome(request, "suppressed", DORMANT, now)
        try:
            hold = quiet_hold(now, request, contact, self.settings)
        except ValueError as err:  # the journey's quiet hours are not HH:MM
            await self._record_outcome(request, "failed", "invalid_quiet_hours", now)
            raise ApplicationError(
                f"quiet hours: {err}", type=ERR_JOURNEY_DEFINITION, non_retryable=True
            ) from err
        if hold is not None:
            return await self._hold(request, hold, now)
        try:
            outgoing = sender.compose(request, contact, self._context(request, contact))
        except ValueError as err:  # the address cannot be a header (say, it holds a newline)
            activity.logger.warning("Cannot build %s: %s", request.message_id, err)
            return await self._record_outcome(request, "failed", "invalid_address", now)
        except ApplicationError as err:
            if err.type == ERR_TEMPLATE:
                # Logged in the message table too; the error itself fails the step.
                await self._record_outcome(request, "failed", _describe(err), now)
            raise
        claim = await self._claim(request, outgoing, previous=row, now=now)
        if claim.cap_frees_at is not None:
            return await self._hold(
                request, Hold(FREQUENCY_CAP, request.on_cap, claim.cap_frees_at), now
            )
        if not claim.taken:
            # Another attempt claimed it between our read and our claim.
            return _result(await self.await_outcome(request.message_id))
        return await self._deliver(request, sender, outgoing, now, attempts=claim.attempts)

    def _context(self, request: SendRequest, contact: Contact) -> dict[str, Any]:
        context = self.renderer.context(
            contact=contact_snapshot(contact),
            event=request.trigger,
            journey=request.journey,
            step=request.step,
            step_context=request.context,
        )
        # Set after the step context, so a step can neither drop nor forge the link, nor
        # give one to a transactional message.
        context.pop(UNSUBSCRIBE_URL, None)
        link = unsubscribe_link(request, self.settings)
        if link is not None:
            context[UNSUBSCRIBE_URL] = link
        return context

    async def _hold(self, request: SendRequest, hold: Hold, now: datetime) -> SendResult:
        if hold.policy == "skip":
            return await self._record_outcome(request, "suppressed", hold.reason, now)
        return SendResult(
            message_id=request.message_id,
            status="deferred",
            reason=hold.reason,
            retry_at=hold.until,
        )

    def _caps_for(self, request: SendRequest) -> list[FrequencyCap]:
        if request.category != "marketing":
            return []
        return [cap for cap in self.caps if cap.channel == request.channel]

    async def _claim(
        self, request: SendRequest, outgoing: Outgoing, *, previous: Message | None, now: datetime
    ) -> _Claim:
        """Take the message id for this attempt, if every frequency cap allows it.

        The cap count and the claim commit together under the contact's lock (see
        `activities.caps`); a refused claim writes nothing. `previous` is the `retrying` row
        this attempt read: the claim moves it on only if nobody claimed it since.
        """
        fields: dict[str, Any] = {
            "status": SENDING,
            "to_address": outgoing.to_address[:320],
            "subject": (outgoing.subject or "")[:998] or None,
            "provider_message_id": outgoing.provider_message_id,
            # The original URLs behind the email's click tokens (`activities.tracking`).
            "links": tracked_links(outgoing),
            # The moment the message takes its slot under the caps.
            "created_at": now,
        }
        caps = self._caps_for(request)
        async with self.database.session() as session:
            if not caps:
                # The claim is then one statement, atomic on its own.
                await self.one_statement_each(session)
            if caps:
                await lock_contact(session, request.contact_id, dialect=self.database.dialect)
                frees_at = await cap_frees_at(
                    session,
                    contact_id=request.contact_id,
                    channel=request.channel,
                    message_id=request.message_id,
                    now=now,
                    caps=caps,
                )
                if frees_at is not None:
                    await session.rollback()
                    return _Claim(taken=False, cap_frees_at=frees_at)
            if previous is not None:
                attempts = previous.attempts + 1
                statement = reclaim(request.message_id, previous, **fields)
                taken = (await session.exec(statement)).rowcount == 1
            else:
                attempts = 1
                session.add(self._row(request, attempts=attempts, **fields))
                try:
                    await session.flush()
                except IntegrityError:
                    await session.rollback()
                    return _Claim(taken=False)
                taken = True
            await session.commit()
        return _Claim(taken=taken, attempts=attempts)

    async def _deliver(
        self,
        request: SendRequest,
        sender: ChannelSender,
        outgoing: Outgoing,
        now: datetime,
        *,
        attempts: int,
    ) -> SendResult:
        """The provider call, inside the transaction that holds this attempt's claim locked
        (`MessageClaims.call_locked`)."""

        async def call(session: AsyncSession, held: Message) -> SendResult:
            return await self._call_provider(session, held, request, sender, outgoing, now)

        outcome = await self.call_locked(request.message_id, attempts, call)
        return _result(outcome) if isinstance(outcome, Message) else outcome

    async def _call_provider(
        self,
        session: AsyncSession,
        held: Message,
        request: SendRequest,
        sender: ChannelSender,
        outgoing: Outgoing,
        now: datetime,
    ) -> SendResult:
        """Hand the message over and commit its outcome on the locked row `held`."""
        message_id = request.message_id
        try:
            provider_message_id = await sender.deliver(outgoing)
        except DeliveryUncertainError as err:
            activity.logger.warning("Delivery of %s is uncertain: %s", message_id, err)
            await settle(session, held, status="failed", reason=UNCERTAIN_DELIVERY)
            return SendResult(message_id=message_id, status="failed", reason=UNCERTAIN_DELIVERY)
        except Exception as err:
            if isinstance(err, ApplicationError) and err.type == ERR_PERMANENT_SEND:
                await settle(session, held, status="failed", reason=_describe(err))
                raise
            # Nothing reached the provider: hand the id back so Temporal's retry may send.
            await settle(session, held, status=RETRYING, reason=_describe(err))
            raise
        # In skipped test time `now` runs ahead of the wall clock; sent_at must not precede
        # the claim.
        sent_at = max(now, datetime.now(UTC))
        await settle(
            session,
            held,
            status="sent",
            reason=None,
            sent_at=sent_at,
            provider_message_id=(provider_message_id or outgoing.provider_message_id),
        )
        return SendResult(message_id=message_id, status="sent", sent_at=sent_at)

    async def _give_up(self, request: SendRequest, reason: str, now: datetime) -> SendResult:
        """Temporal will not retry this send again: record it failed, and send nothing.

        A `retrying` row keeps the reason of its last attempt; a `sending` one is settled as
        uncertain (no attempt is left to take it over; a live one holding it makes the update
        wait for its outcome); a row that already has its outcome answers with it.
        """
        row = await self._find_message(request.message_id)
        if row is None:
            return await self._record_outcome(request, "failed", reason, now)
        if row.status == RETRYING and await self._transition(
            request.message_id, RETRYING, status="failed"
        ):
            return SendResult(message_id=request.message_id, status="failed", reason=row.reason)
        return await self._settle_given_up(await self._reread(request.message_id))

    async def _settle_given_up(self, row: Message) -> SendResult:
        """Answer for a message id after Temporal gave up on its send, without sending."""
        if row.status != SENDING:
            return _result(row)
        # The last attempt may have handed the message over, then died.
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
        self, request: SendRequest, status: FinalStatus, reason: str, now: datetime
    ) -> SendResult:
        """Record a send that ended without a provider call (suppressed, or unbuildable)."""
        written = await self.database.insert_once(
            self._row(request, status=status, reason=reason, created_at=now)
        ) or await self._transition(request.message_id, RETRYING, status=status, reason=reason)
        if not written:
            # Another attempt claimed or settled it meanwhile: its outcome is the answer.
            return _result(await self.await_outcome(request.message_id))
        return SendResult(message_id=request.message_id, status=status, reason=reason)

    # ----- message rows ------------------------------------------------------------------

    async def _find_message(self, message_id: str) -> Message | None:
        async with self.database.session() as session:
            return await session.get(Message, message_id)

    async def _find_message_and_contact(
        self, request: SendRequest
    ) -> tuple[Message | None, Contact | None]:
        """The message row and the contact, read with one connection checkout."""
        async with self.database.session() as session:
            await self.one_statement_each(session)
            row = await session.get(Message, request.message_id)
            contact = await session.get(Contact, request.contact_id)
        return row, contact

    def _row(self, request: SendRequest, **fields: Any) -> Message:
        return Message(
            message_id=request.message_id,
            workflow_id=request.workflow_id,
            run_id=request.run_id,
            journey=request.journey,
            step=request.step,
            contact_id=request.contact_id,
            channel=request.channel,
            category=request.category,
            template=request.template,
            **fields,
        )

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

    # ----- read_contact ------------------------------------------------------------------

    @activity.defn(name=READ_CONTACT)
    async def read_contact(self, request: ContactRequest) -> ContactSnapshot:
        async with self.database.session() as session:
            contact = await session.get(Contact, request.contact_id)
            score = await session.get(LeadScore, request.contact_id)
        if contact is None:
            return ContactSnapshot(contact_id=request.contact_id, exists=False)
        # The result is kept in the workflow's history: no address, no name (contracts.py).
        snapshot = contact_snapshot(contact).for_workflow()
        if score is not None:
            half_life = timedelta(days=self.settings.score_half_life_days)
            snapshot.score = decayed(score.points, score.as_of, datetime.now(UTC), half_life)
            snapshot.qualified = score.qualified
        return snapshot

    # ----- start_journey -----------------------------------------------------------------

    @activity.defn(name=START_JOURNEY)
    async def start_journey(self, request: StartJourneyRequest) -> StartJourneyResult:
        return await self.starter(request)


def contact_snapshot(contact: Contact) -> ContactSnapshot:
    """What `read_contact` answers for a contact row (the score is added by the caller)."""
    return ContactSnapshot(
        contact_id=contact.contact_id,
        exists=True,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone,
        locale=contact.locale,
        attributes=dict(contact.attributes),
        consent={channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS},
        lifecycle_stage=contact.lifecycle_stage,
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


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while a send runs, when the workflow gave it a heartbeat timeout.

    A send is normally done in well under the timeout, and then sends no heartbeat at all;
    a long one (a slow provider, waiting for another attempt's outcome) keeps its attempt
    alive. A dead worker stops heartbeating, so Temporal retries its send after the heartbeat
    timeout instead of the much longer start-to-close timeout.
    """
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        yield
        return
    interval = timeout.total_seconds() / 3

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _describe(err: BaseException) -> str:
    if isinstance(err, ApplicationError) and err.type:
        text = f"{err.type}: {err.message}"
    else:
        text = f"{type(err).__name__}: {err}"
    # Providers quote what they refuse (the address, the number): the reason keeps their
    # words but not the contact's data, which the messages table must not hold past erasure.
    return redact(text)[:REASON_MAX]
