"""Enrollments from the outside: start, route events to, exit and read them.

The one place where the API (and journeys starting other journeys) talks to Temporal. Which
journeys an event concerns comes from the static catalog, never from scanning Temporal; the
database is read only for what the deterministic workflow ids cannot tell (a keyed enrollment
reached without its key, the re-entry history, the enrollments of a contact).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy import select as core_select
from sqlalchemy import update as core_update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select, update
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from journeyman.scoring.starter import is_scored, signal_scorer
from journeyman.segments.entry import check_entries
from journeyman.settings import Settings
from persistence import Database, Enrollment, EventRecord
from persistence.models import as_utc
from workflows import catalog
from workflows.catalog import UnknownJourneyError
from workflows.contracts import (
    EVENT_SIGNAL,
    EXIT_SIGNAL,
    STATE_QUERY,
    EnrollmentInput,
    EnrollmentState,
    Event,
    ExitRequest,
    StartJourneyRequest,
    StartJourneyResult,
    workflow_id_for,
)
from workflows.runtime import Journey, journey_search_attributes

# Memo key naming what started a run: the trigger event id, the starting workflow, or a
# one-off token for a manual start. Comparing it after the start tells "started" from
# "signalled", and makes a retried start (same event id, same activity) answer "started"
# again, as the first attempt did.
START_TOKEN = "start_token"
# Memo key: when the run's trigger event occurred (ISO 8601), for `always` below.
TRIGGER_AT = "trigger_occurred_at"
# `always` replaces the running enrollment, except with a trigger that occurred within this
# long after the running one's own trigger, or before it: that is the same entry again (a
# double submit, a retry under a new id, a late arrival) and is delivered to the running
# enrollment instead. Without it ten concurrent duplicates replace each other several times,
# each replaced run having sent its first message.
SAME_ENTRY_WINDOW = timedelta(seconds=10)
# Keys end up in workflow ids and in `enrollments.key` (200 characters).
MAX_KEY_LENGTH = 200
RPC_TIMEOUT = timedelta(seconds=10)
# A listing should not hang on one enrollment whose worker is down: it falls back to the DB.
QUERY_TIMEOUT = timedelta(seconds=3)

__all__ = [
    "ContactEnrollment",
    "EnrollmentService",
    "ExitResult",
    "KnownEnrollments",
    "UnknownJourneyError",
    "journeys_to_read",
    "read_known",
    "record_routings",
]

_ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[attr-defined]
_EVENTS: Table = EventRecord.__table__  # type: ignore[attr-defined]

# The intake's statements, built once: every request runs them, and building one anew (and
# computing its cache key) costs more CPU than SQLAlchemy's cached compilation saves.
_KNOWN_ROWS = core_select(
    _ENROLLMENTS.c.journey,
    _ENROLLMENTS.c.contact_id,
    _ENROLLMENTS.c.key,
    _ENROLLMENTS.c.workflow_id,
    _ENROLLMENTS.c.status,
    _ENROLLMENTS.c.trigger_event_id,
).where(
    _ENROLLMENTS.c.contact_id.in_(bindparam("contacts", expanding=True)),
    _ENROLLMENTS.c.journey.in_(bindparam("journeys", expanding=True)),
)
_RECORD_ROUTING = (
    core_update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("b_id"))
    .values(
        routing=bindparam("b_routing", type_=_EVENTS.c.routing.type),
        routed_at=bindparam("b_routed_at", type_=_EVENTS.c.routed_at.type),
    )
)


@dataclass
class ExitResult:
    journey: str
    contact_id: str
    # Workflow ids of the running enrollments that were told to exit; empty if none ran.
    exited: list[str]


@dataclass
class ContactEnrollment:
    """An enrollment as the database recorded it, with the live state when it is running."""

    workflow_id: str
    run_id: str
    journey: str
    version: int
    contact_id: str
    key: str | None
    status: str
    ended_by: str | None
    current_step: str | None
    entered_at: datetime
    ended_at: datetime | None
    live: EnrollmentState | None = None


@dataclass(frozen=True)
class KnownEnrollment:
    """The columns of an enrollment row that routing reads."""

    journey: str
    contact_id: str
    key: str | None
    workflow_id: str
    status: str
    trigger_event_id: str | None


@dataclass
class KnownEnrollments:
    """Enrollment rows of some contacts in some journeys, read once up front.

    The intake reads, in the transaction that stores a batch of events, every row routing will
    ask about (`journeys_to_read`), instead of one query per event and journey. Routing falls
    back to its own query for a (journey, contact) pair outside the snapshot. The rows are
    written by the workflows themselves, on their own schedule, so a snapshot taken a moment
    before routing is as current as a query during it; the Temporal server stays the atomic
    guard of every re-entry rule.
    """

    journeys: frozenset[str] = frozenset()
    contacts: frozenset[str] = frozenset()
    rows: dict[tuple[str, str], list[KnownEnrollment]] = field(default_factory=dict)

    def covers(self, journey: str, contact_id: str) -> bool:
        return journey in self.journeys and contact_id in self.contacts

    def earlier(self, journey: str, contact_id: str, key: str | None) -> list[KnownEnrollment]:
        return [row for row in self.rows.get((journey, contact_id), []) if row.key == key]

    def active_ids(self, journey: str, contact_id: str) -> list[str]:
        rows = self.rows.get((journey, contact_id), [])
        return sorted({row.workflow_id for row in rows if row.status == "active"})


def journeys_to_read(events: Iterable[Event]) -> frozenset[str]:
    """The journeys whose enrollment rows routing these events reads (from the static
    catalog): `never` journeys they trigger (the re-entry check) and journeys whose running
    enrollments they reach without a workflow id (ANY_EVENT listeners, a keyed journey's
    event without its key)."""
    names: set[str] = set()
    for event_name, keys in {(event.name, _has_keys(event)) for event in events}:
        names.update(cls.name for cls in catalog.triggered_by(event_name) if cls.reentry == "never")
        for cls, by_name in _listeners(event_name):
            if not by_name or (cls.key is not None and cls.key not in keys):
                names.add(cls.name)
    return frozenset(names)


def _has_keys(event: Event) -> frozenset[str]:
    """Property names with a usable value (what a keyed journey can take its key from)."""
    return frozenset(
        name for name, value in event.properties.items() if value is not None and str(value)
    )


async def read_known(
    connection: AsyncConnection, contacts: Iterable[str], journeys: frozenset[str]
) -> KnownEnrollments:
    """One query for every enrollment row of `contacts` in `journeys` (see KnownEnrollments)."""
    contact_set = frozenset(contacts)
    known = KnownEnrollments(journeys=journeys, contacts=contact_set)
    if not journeys or not contact_set:
        return known
    result = await connection.execute(
        _KNOWN_ROWS, {"contacts": sorted(contact_set), "journeys": sorted(journeys)}
    )
    for row in result:
        enrollment = KnownEnrollment(*row)
        known.rows.setdefault((enrollment.journey, enrollment.contact_id), []).append(enrollment)
    return known


async def record_routings(
    connection: AsyncConnection, routings: Iterable[tuple[str, list[StartJourneyResult]]]
) -> None:
    """Keep each event's routing answer on its row: one statement for all of them (in the
    caller's transaction), in id order so concurrent writers lock rows in the same order."""
    now = datetime.now(UTC)
    params = [
        {"b_id": event_id, "b_routing": [asdict(j) for j in journeys], "b_routed_at": now}
        for event_id, journeys in sorted(routings, key=lambda item: item[0])
    ]
    if not params:
        return
    await connection.execute(_RECORD_ROUTING, params)


@dataclass
class _Run:
    run_id: str
    first_run_id: str
    start_token: str | None
    trigger_at: datetime | None
    running: bool
    workflow_type: str
    started_at: datetime


class EnrollmentService:
    def __init__(self, *, client: Client, database: Database, settings: Settings) -> None:
        self._client = client
        self._database = database
        self._settings = settings

    # ----- starting ----------------------------------------------------------------------

    async def start(
        self, request: StartJourneyRequest, *, known: KnownEnrollments | None = None
    ) -> StartJourneyResult:
        """Enroll a contact in the newest version of a journey, applying its re-entry rule.

        - `never`: one enrollment per contact (and key), ever; any later start is "skipped"
          with the reason `reentry_never`, also while the first one still runs.
        - `after_exit`: a signal-with-start, so an enrollment already running at the same id
          receives the event instead ("signalled"); a new one once it has ended.
        - `always`: a trigger replaces the running enrollment (see `SAME_ENTRY_WINDOW`).

        Concurrent starts of one enrollment id are settled by the Temporal server (one start
        wins atomically), so each rule holds however many requests race. `known`, when it
        covers the journey and contact, answers the re-entry check instead of a query.
        """
        cls = catalog.get(request.journey)
        key = _enrollment_key(cls, request)
        if cls.key is not None and not key:
            return _skipped(cls, "", f"missing_key:{cls.key}")
        if key is not None and len(key) > MAX_KEY_LENGTH:
            return _skipped(cls, "", f"invalid_key:{cls.key}")
        workflow_id = workflow_id_for(cls.name, request.contact_id, key)
        trigger = request.trigger
        token = _start_token(request)

        if cls.reentry == "never":
            if known is not None and known.covers(cls.name, request.contact_id):
                rows = known.earlier(cls.name, request.contact_id, key)
                earlier = [row.trigger_event_id for row in rows]
            else:
                earlier = await self._earlier_triggers(cls, request.contact_id, key)
            if earlier:
                if trigger is not None and trigger.id in earlier:
                    # A retry of the event that created this enrollment: same answer.
                    return StartJourneyResult(cls.name, workflow_id, "started")
                return _skipped(cls, workflow_id, "reentry_never")
        elif cls.reentry == "always":
            running = await self._running(workflow_id)
            if running is not None:
                if running.start_token == token:
                    return StartJourneyResult(cls.name, workflow_id, "started")
                if _is_new_entry(trigger, running):
                    await self._replace(cls, request, workflow_id, key, running)

        return await self._start_run(cls, request, workflow_id, key, token)

    async def _start_run(
        self,
        cls: type[Journey],
        request: StartJourneyRequest,
        workflow_id: str,
        key: str | None,
        token: str,
    ) -> StartJourneyResult:
        trigger = request.trigger
        # `never` starts without a signal and fails on any earlier run, running or closed: a
        # duplicate trigger racing the first (before its row exists, so the database check
        # above missed it) is refused like any re-entry, rather than delivered as a signal.
        # The database check is the main guard (the server forgets closed runs after
        # retention); this one is atomic on the server, so of concurrent starts one wins.
        #
        # The other rules use signal-with-start, which accepts USE_EXISTING and
        # TERMINATE_EXISTING but not FAIL (server 1.32 answers INVALID_ARGUMENT): every start
        # attaches to a running enrollment, and the memo tells whose run it is. `always`
        # terminated the old run beforehand, so it knows which run it replaced and closed
        # that run's row; TERMINATE_EXISTING here could kill a run started concurrently
        # whose row nobody would close.
        never = cls.reentry == "never"
        signal = trigger is not None and not never
        try:
            handle = await self._client.start_workflow(
                cls.workflow_type(),
                EnrollmentInput(
                    contact_id=request.contact_id,
                    key=key,
                    trigger=trigger,
                    send_task_queue=self._settings.send_task_queue or None,
                    lean_bookkeeping=True,
                ),
                id=workflow_id,
                task_queue=self._settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
                if never
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL
                if never
                else WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=journey_search_attributes(cls, request.contact_id),
                memo=_memo(token, trigger),
                static_summary=_summary(cls, request.contact_id, key),
                static_details=_details(request),
                start_signal=EVENT_SIGNAL if signal else None,
                start_signal_args=[trigger] if signal else [],
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            # Only `never` gets here. A retry of the start that made the run answers as the
            # first attempt did; anything else is a refused re-entry.
            latest = await self._describe(workflow_id)
            if latest is not None and latest.start_token == token:
                return StartJourneyResult(cls.name, workflow_id, "started")
            return _skipped(cls, workflow_id, "reentry_never")
        if never:
            # FAIL on any existing run, running or closed: a start that returned made the run.
            # (Bulk enrollment starts thousands of these; the describe below would double the
            # round trips.)
            return StartJourneyResult(cls.name, workflow_id, "started")
        description = await self._client.get_workflow_handle(
            workflow_id, run_id=handle.result_run_id
        ).describe(rpc_timeout=RPC_TIMEOUT)
        if await description.memo_value(START_TOKEN, None) == token:
            return StartJourneyResult(cls.name, workflow_id, "started")
        if trigger is not None:
            return StartJourneyResult(cls.name, workflow_id, "signalled")
        # A start without an event found the contact already on its way: nothing to deliver.
        return _skipped(cls, workflow_id, "already_active")

    async def _earlier_triggers(
        self, cls: type[Journey], contact_id: str, key: str | None
    ) -> list[str | None]:
        """The trigger event ids of the contact's enrollments (with this key) in the journey."""
        query = select(Enrollment.trigger_event_id).where(
            Enrollment.journey == cls.name,
            Enrollment.contact_id == contact_id,
            col(Enrollment.key) == key if key is not None else col(Enrollment.key).is_(None),
        )
        async with self._database.session() as session:
            return list((await session.exec(query)).all())

    async def _describe(self, workflow_id: str) -> _Run | None:
        """The newest run of the id, running or closed; None if the server knows none."""
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return _Run(
            run_id=description.run_id,
            first_run_id=description.raw_info.first_run_id or description.run_id,
            start_token=await description.memo_value(START_TOKEN, None),
            trigger_at=_parse_time(await description.memo_value(TRIGGER_AT, None)),
            running=description.status == WorkflowExecutionStatus.RUNNING,
            workflow_type=description.workflow_type,
            started_at=description.start_time,
        )

    async def _running(self, workflow_id: str) -> _Run | None:
        run = await self._describe(workflow_id)
        return run if run is not None and run.running else None

    async def _replace(
        self,
        cls: type[Journey],
        request: StartJourneyRequest,
        workflow_id: str,
        key: str | None,
        running: _Run,
    ) -> None:
        """End a running enrollment so a re-entry can take its id (`reentry = "always"`)."""
        try:
            await self._client.get_workflow_handle(workflow_id, run_id=running.run_id).terminate(
                reason=f"re-entered: replaced by {_cause(request)}", rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # It ended meanwhile and records that itself, or a concurrent re-entry replaced
            # it first and closes its row.
            return
        # A terminated run records nothing more itself, so its row is closed here; and a run
        # terminated before it wrote its row (its worker was busy or down) gets one, closed,
        # which its own late "entered" record, should it still come, cannot overwrite.
        closed: dict[str, Any] = {
            "status": "exited",
            "ended_by": "reentered",
            "ended_at": datetime.now(UTC),
        }
        inserted = await self._database.insert_once(
            Enrollment(
                run_id=running.first_run_id,
                workflow_id=workflow_id,
                journey=cls.name,
                version=_version_of(running.workflow_type, cls.version),
                contact_id=request.contact_id,
                key=key,
                entered_at=running.started_at,
                **closed,
            )
        )
        if inserted:
            return
        async with self._database.session() as session:
            await session.exec(
                update(Enrollment)
                .where(
                    col(Enrollment.run_id) == running.first_run_id,
                    col(Enrollment.status) == "active",
                )
                .values(**closed)
            )
            await session.commit()

    # ----- routing -----------------------------------------------------------------------

    async def route(
        self, event: Event, *, known: KnownEnrollments | None = None
    ) -> list[StartJourneyResult]:
        """Start every journey the event triggers, then signal every enrollment listening.

        An enrollment this event just started or signalled is not signalled a second time.
        `known` (see `KnownEnrollments`) answers the enrollment reads it covers.
        """
        results = [
            await self.start(
                StartJourneyRequest(journey=cls.name, contact_id=event.contact_id, trigger=event),
                known=known,
            )
            for cls in catalog.triggered_by(event.name)
        ]
        reached = {result.workflow_id for result in results if result.action != "skipped"}
        for cls, by_name in _listeners(event.name):
            # A journey listening to every event asks the database which enrollments run,
            # rather than signalling an id that most contacts do not have.
            ids = (
                await self._listening_ids(cls, event, known)
                if by_name
                else await self._known_active_ids(cls.name, event.contact_id, known)
            )
            for workflow_id in ids:
                if workflow_id in reached:
                    continue
                reached.add(workflow_id)
                if await self._signal(workflow_id, EVENT_SIGNAL, event):
                    results.append(StartJourneyResult(cls.name, workflow_id, "signalled"))
        if is_scored(event):
            # Lead scoring: the contact's scorer workflow applies the points (it is not a
            # journey, so it is not among the results).
            await signal_scorer(self._client, self._settings.task_queue, event)
        # Segment-entry triggers: journeys entered by joining a segment, checked now that the
        # contact did something (returns at once when no journey declares an entry segment).
        await check_entries(self._database, self._settings, self.start, event.contact_id)
        return results

    async def _listening_ids(
        self, cls: type[Journey], event: Event, known: KnownEnrollments | None
    ) -> list[str]:
        if cls.key is None:
            return [workflow_id_for(cls.name, event.contact_id)]
        value = event.properties.get(cls.key)
        if value is not None and str(value):
            return [workflow_id_for(cls.name, event.contact_id, str(value))]
        # No key on the event: it concerns every enrollment of the contact in this journey.
        return await self._known_active_ids(cls.name, event.contact_id, known)

    async def _known_active_ids(
        self, journey: str, contact_id: str, known: KnownEnrollments | None
    ) -> list[str]:
        if known is not None and known.covers(journey, contact_id):
            return known.active_ids(journey, contact_id)
        return await self._active_ids(journey, contact_id)

    async def _active_ids(self, journey: str, contact_id: str) -> list[str]:
        query = select(Enrollment.workflow_id).where(
            Enrollment.journey == journey,
            Enrollment.contact_id == contact_id,
            Enrollment.status == "active",
        )
        async with self._database.session() as session:
            return sorted(set((await session.exec(query)).all()))

    async def _signal(self, workflow_id: str, signal: str, arg: object) -> bool:
        """Signal the running enrollment; False when none is running (not an error)."""
        try:
            await self._client.get_workflow_handle(workflow_id).signal(
                signal, arg, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    # ----- operator actions and reads ----------------------------------------------------

    async def route_and_record(self, event: Event) -> list[StartJourneyResult]:
        """Route a stored event and keep the answer on its row. Safe to repeat for an event
        whose earlier routing died half-way: workflows de-duplicate by event id."""
        journeys = await self.route(event)
        async with self._database.engine.begin() as connection:
            await record_routings(connection, [(event.id, journeys)])
        return journeys

    async def exit(self, journey: str, contact_id: str, key: str | None, reason: str) -> ExitResult:
        """Tell the contact's running enrollment(s) in a journey to exit.

        A keyed journey without a key means every running enrollment of the contact in it.
        """
        cls = catalog.get(journey)
        if cls.key is not None and key is None:
            candidates = await self._active_ids(cls.name, contact_id)
        else:
            candidates = [workflow_id_for(cls.name, contact_id, key if cls.key else None)]
        request = ExitRequest(reason=reason)
        exited = [wid for wid in candidates if await self._signal(wid, EXIT_SIGNAL, request)]
        return ExitResult(journey=cls.name, contact_id=contact_id, exited=exited)

    async def contact_enrollments(self, contact_id: str) -> list[ContactEnrollment]:
        """Every enrollment of the contact, oldest first; running ones with live state."""
        query = (
            select(Enrollment)
            .where(Enrollment.contact_id == contact_id)
            .order_by(col(Enrollment.entered_at), col(Enrollment.run_id))
        )
        async with self._database.session() as session:
            rows = (await session.exec(query)).all()
        enrollments = [_from_row(row) for row in rows]
        live = await asyncio.gather(
            *(self._live_state(e.workflow_id) for e in enrollments if e.status == "active")
        )
        for enrollment, state in zip(
            (e for e in enrollments if e.status == "active"), live, strict=True
        ):
            enrollment.live = state
        return enrollments

    async def _live_state(self, workflow_id: str) -> EnrollmentState | None:
        try:
            state: EnrollmentState = await self._client.get_workflow_handle(workflow_id).query(
                STATE_QUERY, result_type=EnrollmentState, rpc_timeout=QUERY_TIMEOUT
            )
        except (
            RPCError,
            WorkflowQueryFailedError,
            WorkflowQueryRejectedError,
            TimeoutError,
        ):
            # A listing is still useful without the live view (worker down, run gone).
            return None
        return state


def _listeners(event_name: str) -> list[tuple[type[Journey], bool]]:
    """Journey versions whose enrollments want the event: (class, listens by name)."""
    by_name = catalog.listening_to(event_name)
    if event_name.startswith("lead."):  # not behaviour: see ANY_EVENT
        return [(cls, True) for cls in by_name]
    wildcard = [cls for cls in catalog.listening_to_any() if cls not in by_name]
    return [(cls, True) for cls in by_name] + [(cls, False) for cls in wildcard]


def _enrollment_key(cls: type[Journey], request: StartJourneyRequest) -> str | None:
    if cls.key is None:
        return None
    if request.key:
        return request.key
    if request.trigger is None:
        return None
    value = request.trigger.properties.get(cls.key)
    return str(value) if value is not None and str(value) else None


def _start_token(request: StartJourneyRequest) -> str:
    """What a run records as its starter; a retry of the same start presents the same one."""
    if request.trigger is not None:
        return request.trigger.id
    if request.started_by:
        return f"started_by:{request.started_by}"
    return f"manual:{uuid.uuid4()}"


def _memo(token: str, trigger: Event | None) -> dict[str, str]:
    memo = {START_TOKEN: token}
    if trigger is not None and trigger.occurred_at is not None:
        memo[TRIGGER_AT] = trigger.occurred_at.isoformat()
    return memo


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _is_new_entry(trigger: Event | None, running: _Run) -> bool:
    """Whether an `always` start replaces the running run, or is the same entry again."""
    if trigger is None or trigger.occurred_at is None or running.trigger_at is None:
        return True  # a manual start, or a run with no trigger time: the caller means it
    return as_utc(trigger.occurred_at) - running.trigger_at > SAME_ENTRY_WINDOW


def _version_of(workflow_type: str, default: int) -> int:
    _name, _, version = workflow_type.rpartition(".v")
    return int(version) if version.isdigit() else default


def _skipped(cls: type[Journey], workflow_id: str, reason: str) -> StartJourneyResult:
    return StartJourneyResult(cls.name, workflow_id, "skipped", reason)


def _cause(request: StartJourneyRequest) -> str:
    if request.trigger is not None:
        return f"event {request.trigger.name} ({request.trigger.id})"
    if request.started_by:
        return request.started_by
    return "a manual start"


def _summary(cls: type[Journey], contact_id: str, key: str | None) -> str:
    text = f"{cls.name} v{cls.version} for {contact_id}"
    if key is not None and cls.key is not None:
        label = cls.key.removesuffix("_id")
        text += f" ({label} {key})"
    return text


def _details(request: StartJourneyRequest) -> str:
    lines = []
    if request.trigger is not None:
        lines.append(f"Triggered by event `{request.trigger.name}` (id `{request.trigger.id}`).")
    if request.started_by:
        lines.append(f"Started by `{request.started_by}`.")
    return "\n\n".join(lines) or "Started manually."


def _from_row(row: Enrollment) -> ContactEnrollment:
    return ContactEnrollment(
        workflow_id=row.workflow_id,
        run_id=row.run_id,
        journey=row.journey,
        version=row.version,
        contact_id=row.contact_id,
        key=row.key,
        status=row.status,
        ended_by=row.ended_by,
        current_step=row.current_step,
        entered_at=as_utc(row.entered_at),
        ended_at=as_utc(row.ended_at) if row.ended_at else None,
    )
