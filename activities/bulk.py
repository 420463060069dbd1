"""The bulk enrollment's activities: count the source, read a page of it, start a page.

All three are idempotent. `bulk_start` may be retried after it started part of its page (a
worker died, Temporal or the database went away): every start carries the bulk workflow's id
as `started_by`, so `EnrollmentService.start` answers "started" again for the runs this bulk
enrollment made instead of starting them twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.parts import WorkerParts
from journeyman.enrollments import START_TOKEN, EnrollmentService, KnownEnrollments, read_known
from journeyman.segments import UnknownSegmentError, segment_count, segment_page
from journeyman.settings import Settings
from persistence import Contact, Database
from persistence.models import BulkListItem
from workflows import catalog
from workflows.bulk_enrollment import (
    BULK_COUNT,
    BULK_PAGE,
    BULK_START,
    ERR_UNKNOWN_SEGMENT,
    MAX_ERRORS,
    BulkCount,
    BulkCountRequest,
    BulkEnrollment,
    BulkPage,
    BulkPageRequest,
    BulkStartRequest,
    BulkStartResult,
)
from workflows.catalog import UnknownJourneyError
from workflows.contracts import ERR_UNKNOWN_JOURNEY, StartJourneyRequest, StartJourneyResult
from workflows.runtime import Journey

# Starts of one page in flight at once: enough to keep up with a high rate (each start is two
# or three round trips), few enough not to flood the database pool or the frontend.
CONCURRENT_STARTS = 16
# Outages: the whole page fails and is retried later; starting again is idempotent.
_TRANSIENT_RPC = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.ABORTED,
    RPCStatusCode.INTERNAL,
    RPCStatusCode.UNKNOWN,
}
# Answers that, on a retried page, may be this bulk enrollment's own earlier start.
_MAYBE_OURS = {"reentry_never", "already_active"}


class BulkActivities:
    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        enrollments: EnrollmentService,
    ) -> None:
        self._database = database
        self._settings = settings
        self._enrollments = enrollments

    @activity.defn(name=BULK_COUNT)
    async def bulk_count(self, request: BulkCountRequest) -> BulkCount:
        if request.segment is not None:
            try:
                async with self._database.session() as session:
                    total = await segment_count(
                        session, request.segment, now=request.now, settings=self._settings
                    )
            except UnknownSegmentError as err:
                raise _unknown_segment(request.segment) from err
            return BulkCount(total)
        async with self._database.session() as session:
            query = select(BulkListItem.position).where(BulkListItem.list_id == request.list_id)
            positions = (
                await session.exec(query.order_by(col(BulkListItem.position).desc()).limit(1))
            ).first()
        # Positions are 0..n-1 (written in one transaction).
        return BulkCount(0 if positions is None else positions + 1)

    @activity.defn(name=BULK_PAGE)
    async def bulk_page(self, request: BulkPageRequest) -> BulkPage:
        if request.segment is not None:
            try:
                async with self._database.session() as session:
                    ids = await segment_page(
                        session,
                        request.segment,
                        now=request.now,
                        after=request.after_contact,
                        limit=request.limit,
                        settings=self._settings,
                    )
            except UnknownSegmentError as err:
                raise _unknown_segment(request.segment) from err
            return BulkPage(ids, after_contact=ids[-1] if ids else request.after_contact)
        query = (
            select(BulkListItem)
            .where(
                BulkListItem.list_id == request.list_id,
                col(BulkListItem.position) >= request.next_position,
            )
            .order_by(col(BulkListItem.position))
            .limit(request.limit)
        )
        async with self._database.session() as session:
            rows = (await session.exec(query)).all()
        next_position = rows[-1].position + 1 if rows else request.next_position
        return BulkPage([row.contact_id for row in rows], next_position=next_position)

    @activity.defn(name=BULK_START)
    async def bulk_start(self, request: BulkStartRequest) -> BulkStartResult:
        try:
            cls = catalog.get(request.journey)
        except UnknownJourneyError as err:
            raise ApplicationError(
                f"unknown journey {request.journey!r}", type=ERR_UNKNOWN_JOURNEY, non_retryable=True
            ) from err
        contacts, enrolled = await self._page_snapshot(cls, request.contact_ids)
        retried = activity.info().attempt > 1
        result = BulkStartResult()
        outcomes: Counter[str] = Counter()
        gate = asyncio.Semaphore(CONCURRENT_STARTS)

        async def one(contact_id: str) -> None:
            if contact_id not in contacts:
                outcomes["skipped:unknown_contact"] += 1
                return
            async with gate:
                try:
                    answer = await self._enrollments.start(
                        StartJourneyRequest(
                            journey=request.journey,
                            contact_id=contact_id,
                            started_by=request.started_by,
                        ),
                        known=enrolled,
                    )
                    if retried and answer.reason in _MAYBE_OURS:
                        answer = await self._ours_after_all(answer, request.started_by)
                except (OperationalError, InterfaceError, PoolTimeoutError):
                    raise  # the database is away: retry the page later
                except RPCError as err:
                    if err.status in _TRANSIENT_RPC:
                        raise
                    _failed(result, contact_id, err)
                    return
                except RuntimeError as err:
                    if str(err).startswith("Failed client connect"):
                        raise
                    _failed(result, contact_id, err)
                    return
                except Exception as err:  # one contact's problem must not stop the page
                    _failed(result, contact_id, err)
                    return
            if answer.action == "skipped":
                outcomes[f"skipped:{answer.reason or 'unknown'}"] += 1
            else:
                # "signalled" cannot happen without a trigger; count it as reached anyway.
                outcomes["started"] += 1
            activity.heartbeat()

        # A TaskGroup: an outage raised by one start cancels the others, and the page retries.
        try:
            async with asyncio.TaskGroup() as group:
                for contact_id in request.contact_ids:
                    group.create_task(one(contact_id))
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        result.started = outcomes.pop("started", 0)
        result.skipped = {key.removeprefix("skipped:"): n for key, n in outcomes.items()}
        return result

    async def _page_snapshot(
        self, cls: type[Journey], contact_ids: list[str]
    ) -> tuple[set[str], KnownEnrollments]:
        """The page's contacts that exist, and their enrollment rows in a `never` journey (its
        re-entry check): two queries for the page instead of one per contact."""
        exists = select(Contact.contact_id).where(col(Contact.contact_id).in_(contact_ids))
        journeys = frozenset({cls.name}) if cls.reentry == "never" else frozenset()
        async with self._database.engine.connect() as connection:
            contacts = set((await connection.execute(exists)).scalars().all())
            enrolled = await read_known(connection, contacts, journeys)
        return contacts, enrolled

    async def _ours_after_all(
        self, answer: StartJourneyResult, started_by: str
    ) -> StartJourneyResult:
        """On a retried page, a refusal may be the run our own earlier attempt started (a
        `never` journey whose row exists by now answers "reentry_never" without looking at
        the run): the run's start token tells."""
        try:
            description = await activity.client().get_workflow_handle(answer.workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return answer
            raise
        if await description.memo_value(START_TOKEN, None) == f"started_by:{started_by}":
            return StartJourneyResult(answer.journey, answer.workflow_id, "started")
        return answer


def _failed(result: BulkStartResult, contact_id: str, err: Exception) -> None:
    result.failed += 1
    if len(result.errors) < MAX_ERRORS:
        result.errors.append(f"{contact_id}: {type(err).__name__}: {err}"[:300])


def _unknown_segment(name: str) -> ApplicationError:
    return ApplicationError(
        f"unknown segment {name!r}", type=ERR_UNKNOWN_SEGMENT, non_retryable=True
    )


def bulk_parts(
    database: Database,
    settings: Settings,
    enrollments: EnrollmentService,
) -> WorkerParts:
    """The bulk enrollment workflow and its activities, for `worker.py`: `enrollments` is the
    worker's `EnrollmentService` (its task queue is where the enrolled journeys run)."""
    acts = BulkActivities(database=database, settings=settings, enrollments=enrollments)
    return WorkerParts(
        workflows=[BulkEnrollment],
        activities=[acts.bulk_count, acts.bulk_page, acts.bulk_start],
    )
