"""Bulk enrollment: page through a segment or an uploaded list and start each contact on a
journey, at most `starts_per_second`, answering a `progress` query all along.

Pacing is done with workflow timers, so it is deterministic and survives restarts: a page
holds `rate x 1 s` contacts (at least 1, at most `MAX_PAGE`), and after a page of `n`
contacts the workflow sleeps until `n / rate` seconds have passed since the page began. Every
page, the last one too, so takes at least its share of time, and the contacts processed per
second of workflow time never exceed the limit (500 contacts at 50/s take at least 10 s).
Skipped contacts count against the limit as well: each one still costs a start call.

No contact is enrolled twice: each start carries `started_by=<this workflow id>`, so a start
retried after a crash (the same page's activity again, on another worker) finds the run it
made and answers "started" again rather than starting a second one. The cursor only moves
once a page's start activity has completed, and continue-as-new carries it with the counters.

Not a Journey: no steps or enrollments of its own, only this loop.
"""

# No `from __future__ import annotations`: the dataclasses below cross the workflow boundary.
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        BULK_ENROLLMENT,
        ERR_UNKNOWN_JOURNEY,
        BulkCarry,
        BulkEnrollmentInput,
        BulkProgress,
    )

# Activity names and the query, part of the wire contract with the worker and the API.
BULK_COUNT = "bulk_count"
BULK_PAGE = "bulk_page"
BULK_START = "bulk_start"
PROGRESS_QUERY = "progress"
# ApplicationError type of a segment that does not exist (not retried).
ERR_UNKNOWN_SEGMENT = "UnknownSegment"
ERR_UNKNOWN_LIST = "UnknownList"

# A page is one second of starts; beyond this many per page (rates above 1000/s) pages come
# more often than once a second instead, keeping each activity's work bounded.
MAX_PAGE = 1000
# Failures kept as samples in the progress.
MAX_ERRORS = 5

# A database or Temporal outage delays the enrollment and loses nothing: the activities are
# idempotent and retry with backoff for as long as it takes. A journey or segment that does
# not exist fails the bulk enrollment at once.
BULK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[ERR_UNKNOWN_JOURNEY, ERR_UNKNOWN_SEGMENT, ERR_UNKNOWN_LIST],
)
READ_TIMEOUT = timedelta(seconds=60)
START_TIMEOUT = timedelta(minutes=10)
# The start activity heartbeats after every contact; a worker that died mid-page is noticed
# this fast and the page is retried (idempotently) elsewhere.
START_HEARTBEAT = timedelta(seconds=20)


@dataclass
class BulkCountRequest:
    segment: str | None
    list_id: str | None
    # Segments are evaluated as of the bulk enrollment's start (time windows like "30 days").
    now: datetime


@dataclass
class BulkCount:
    total: int


@dataclass
class BulkPageRequest:
    segment: str | None
    list_id: str | None
    now: datetime
    limit: int
    after_contact: str | None = None
    next_position: int = 0


@dataclass
class BulkPage:
    contact_ids: list[str]
    # Where the next page starts (the last id of this one, or the next list position).
    after_contact: str | None = None
    next_position: int = 0


@dataclass
class BulkStartRequest:
    journey: str
    contact_ids: list[str]
    # The bulk workflow's id: the enrollments' start token, which makes a retry idempotent.
    started_by: str


@dataclass
class BulkStartResult:
    started: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def pacing(starts_per_second: float) -> int:
    """Contacts per page: one second's worth, at least one, at most `MAX_PAGE`."""
    return max(1, min(MAX_PAGE, round(starts_per_second)))


def source_of(request: BulkEnrollmentInput) -> str:
    return f"segment:{request.segment}" if request.segment else f"list:{request.list_id}"


@workflow.defn(name=BULK_ENROLLMENT)
class BulkEnrollment:
    @workflow.init
    def __init__(self, request: BulkEnrollmentInput) -> None:
        carry = request.carry
        self._progress = (
            carry.progress
            if carry is not None
            else BulkProgress(
                journey=request.journey,
                source=source_of(request),
                starts_per_second=request.starts_per_second,
            )
        )
        self._after_contact = carry.after_contact if carry else None
        self._next_position = carry.next_position if carry else 0

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> BulkProgress:
        return self._progress

    @workflow.run
    async def run(self, request: BulkEnrollmentInput) -> BulkProgress:
        if (request.segment is None) == (request.list_id is None):
            raise ApplicationError(
                "a bulk enrollment needs exactly one of segment and list_id", non_retryable=True
            )
        if not request.starts_per_second > 0:
            raise ApplicationError("starts_per_second must be above 0", non_retryable=True)
        progress = self._progress
        if request.carry is None:
            progress.started_at = workflow.now()
            counted = await workflow.execute_activity(
                BULK_COUNT,
                BulkCountRequest(request.segment, request.list_id, progress.started_at),
                result_type=BulkCount,
                start_to_close_timeout=READ_TIMEOUT,
                retry_policy=BULK_RETRY,
                summary=f"count {progress.source}",
            )
            progress.total = counted.total
            self._measure()
        else:
            progress.runs += 1
        limit = pacing(request.starts_per_second)
        pages_this_run = 0
        while True:
            if (
                pages_this_run >= request.pages_per_run
                or workflow.info().is_continue_as_new_suggested()
            ):
                workflow.continue_as_new(self._carried(request))
            began = workflow.now()
            page = await self._page(request, limit)
            if not page.contact_ids:
                break
            await self._start(request, page.contact_ids)
            self._after_contact = page.after_contact
            self._next_position = page.next_position
            pages_this_run += 1
            # This page's share of time: n contacts at `rate` per second.
            owed = timedelta(seconds=len(page.contact_ids) / request.starts_per_second)
            left = began + owed - workflow.now()
            if left > timedelta(0):
                await workflow.sleep(left, summary="rate limit")
            self._measure()
            if len(page.contact_ids) < limit:
                break  # a short page is the last one: no need to ask for an empty one
        progress.status = "completed"
        progress.finished_at = workflow.now()
        self._measure()
        return progress

    async def _page(self, request: BulkEnrollmentInput, limit: int) -> BulkPage:
        started_at = self._progress.started_at or workflow.now()
        page: BulkPage = await workflow.execute_activity(
            BULK_PAGE,
            BulkPageRequest(
                segment=request.segment,
                list_id=request.list_id,
                now=started_at,
                limit=limit,
                after_contact=self._after_contact,
                next_position=self._next_position,
            ),
            result_type=BulkPage,
            start_to_close_timeout=READ_TIMEOUT,
            retry_policy=BULK_RETRY,
            summary=f"page {self._progress.pages + 1}",
        )
        return page

    async def _start(self, request: BulkEnrollmentInput, contact_ids: list[str]) -> None:
        result = await workflow.execute_activity(
            BULK_START,
            BulkStartRequest(
                journey=request.journey,
                contact_ids=contact_ids,
                started_by=workflow.info().workflow_id,
            ),
            result_type=BulkStartResult,
            start_to_close_timeout=START_TIMEOUT,
            heartbeat_timeout=START_HEARTBEAT,
            retry_policy=BULK_RETRY,
            summary=f"start {len(contact_ids)} on {request.journey}",
        )
        progress = self._progress
        progress.pages += 1
        progress.done += len(contact_ids)
        progress.started += result.started
        for reason, count in result.skipped.items():
            progress.skipped[reason] = progress.skipped.get(reason, 0) + count
        progress.failed += result.failed
        progress.errors = (progress.errors + result.errors)[:MAX_ERRORS]
        self._measure(rate=False)

    def _measure(self, *, rate: bool = True) -> None:
        """Rate (at a page's paced end, so it never overshoots the limit) and ETA as of now,
        and the one-line summary the Temporal UI shows."""
        progress = self._progress
        elapsed = (workflow.now() - (progress.started_at or workflow.now())).total_seconds()
        if rate and progress.done and elapsed > 0:
            progress.rate = progress.done / elapsed
        left = max(0, progress.total - progress.done)
        speed = progress.rate or progress.starts_per_second
        progress.eta_seconds = 0.0 if progress.status != "running" else left / speed
        workflow.set_current_details(describe(progress))

    def _carried(self, request: BulkEnrollmentInput) -> BulkEnrollmentInput:
        return BulkEnrollmentInput(
            journey=request.journey,
            segment=request.segment,
            list_id=request.list_id,
            starts_per_second=request.starts_per_second,
            requested_by=request.requested_by,
            carry=BulkCarry(
                progress=self._progress,
                after_contact=self._after_contact,
                next_position=self._next_position,
            ),
            pages_per_run=request.pages_per_run,
        )


def describe(progress: BulkProgress) -> str:
    """One line: "1200/10000 done (1150 started, 50 skipped, 0 failed), 49.8/s, ETA 177 s"."""
    skipped = sum(progress.skipped.values())
    line = (
        f"{progress.done}/{progress.total} done ({progress.started} started, {skipped} "
        f"skipped, {progress.failed} failed), {progress.rate:.1f}/s"
    )
    if progress.status == "running" and progress.eta_seconds is not None:
        line += f", ETA {progress.eta_seconds:.0f} s"
    return f"{progress.status}: {line}" if progress.status != "running" else line
