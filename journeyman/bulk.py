"""Bulk enrollments from the outside: upload a list, start the workflow, read its progress.

Used by the API (`POST /v1/journeys/{name}/bulk-enrollments`) and by `journeyman enroll`.
An uploaded list is stored in `bulk_list_items` under a fresh list id (deduplicated, in
upload order) so the workflow pages through it by position and its history never holds the
ids; a segment is paged through by the workflow itself.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from journeyman.segments import UnknownSegmentError, get_segment, segment_count
from journeyman.settings import Settings
from persistence import Database
from persistence.models import BulkListItem
from workflows import catalog
from workflows.bulk_enrollment import PROGRESS_QUERY, describe, source_of
from workflows.contracts import BULK_ENROLLMENT, BulkEnrollmentInput, BulkProgress

__all__ = [
    "MAX_IDS",
    "BulkEnrollmentService",
    "BulkInputError",
    "BulkStarted",
    "ProgressUnavailableError",
    "UnknownBulkEnrollmentError",
    "UnknownSegmentError",
    "clean_ids",
    "parse_csv",
    "parse_id_file",
]

# Ids per uploaded list. Larger audiences belong in a segment, which pages in the database.
MAX_IDS = 100_000
# Rows per INSERT when storing a list.
INSERT_CHUNK = 5_000
# Like the contacts API (`ContactId`): ids become part of workflow ids, so no colon, no
# whitespace, no control characters, at most 200 characters.
_CONTACT_ID = re.compile(r"^[^\s:\x00-\x1f\x7f]{1,200}$")
# Bulk ids are what `start` makes (32 hex digits) or what a journey's Temporal Schedule makes
# of `bulk:<journey>:scheduled`: Temporal appends the run's scheduled time.
_BULK_ID = re.compile(r"^(?:[0-9a-f]{32}|scheduled-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")
# Memo keys: what a listing or a failed run's progress can show without a query.
MEMO_SOURCE = "source"
MEMO_TOTAL = "total"
QUERY_TIMEOUT = timedelta(seconds=5)
RPC_TIMEOUT = timedelta(seconds=10)


class BulkInputError(ValueError):
    """The list or the request cannot be enrolled (empty, too long, bad ids, bad CSV)."""


class UnknownBulkEnrollmentError(LookupError):
    pass


class ProgressUnavailableError(RuntimeError):
    """The bulk enrollment runs, but no worker answered its progress query."""


@dataclass
class BulkStarted:
    id: str
    workflow_id: str
    journey: str
    source: str
    total: int
    starts_per_second: float


def workflow_id_of(journey: str, bulk_id: str) -> str:
    return f"bulk:{journey}:{bulk_id}"


# ----- reading lists ----------------------------------------------------------------------


def clean_ids(ids: Iterable[object]) -> list[str]:
    """The ids without duplicates, in first-seen order; raises BulkInputError for an id that
    is not a valid contact id, an empty list, or more than `MAX_IDS` distinct ids."""
    seen: dict[str, None] = {}
    bad: list[str] = []
    for raw in ids:
        value = raw.strip() if isinstance(raw, str) else raw
        if not isinstance(value, str) or not _CONTACT_ID.match(value):
            if len(bad) < 5:
                bad.append(repr(raw)[:60])
            continue
        seen.setdefault(value, None)
        if len(seen) > MAX_IDS:
            raise BulkInputError(f"too many contact ids: at most {MAX_IDS} per list")
    if bad:
        raise BulkInputError(
            "not valid contact ids (1-200 characters, no whitespace, colons or control "
            f"characters): {', '.join(bad)}"
        )
    if not seen:
        raise BulkInputError("the list holds no contact ids")
    return list(seen)


def parse_csv(text: str) -> list[str]:
    """Contact ids from CSV: one id per line, or a header row naming a `contact_id` column
    (other columns are ignored). Blank lines are skipped."""
    rows = [
        (number, [cell.strip() for cell in row])
        for number, row in enumerate(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), 1)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise BulkInputError("the CSV holds no contact ids")
    header = [cell.lower() for cell in rows[0][1]]
    if "contact_id" in header:
        column = header.index("contact_id")
        ids = []
        for number, row in rows[1:]:
            if column >= len(row) or not row[column]:
                raise BulkInputError(f"CSV line {number}: no contact_id")
            ids.append(row[column])
        return ids
    for number, row in rows:
        if len([cell for cell in row if cell]) != 1:
            raise BulkInputError(
                f"CSV line {number}: {len(row)} columns; give one id per line, or a header "
                "row with a contact_id column"
            )
    return [next(cell for cell in row if cell) for _, row in rows]


def parse_id_file(name: str, data: bytes) -> list[str]:
    """Ids from a `.json` file (a list of ids, or {"contact_ids": [...]}) or a CSV file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BulkInputError(f"{name}: not UTF-8 text") from err
    if not name.lower().endswith(".json"):
        return parse_csv(text)
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise BulkInputError(f"{name}: not JSON ({err})") from err
    if isinstance(value, dict):
        value = value.get("contact_ids")
    if not isinstance(value, list):
        raise BulkInputError(f'{name}: want a JSON list of ids or {{"contact_ids": [...]}}')
    return [str(item) if isinstance(item, int) else item for item in value]


# ----- the service ------------------------------------------------------------------------


class BulkEnrollmentService:
    def __init__(self, *, client: Client, database: Database, settings: Settings) -> None:
        self._client = client
        self._database = database
        self._settings = settings

    async def create_list(self, contact_ids: Sequence[object]) -> tuple[str, int]:
        """Store the cleaned ids under a new list id; returns (list id, number of ids)."""
        ids = clean_ids(contact_ids)
        list_id = uuid.uuid4().hex
        rows = [
            {"list_id": list_id, "position": position, "contact_id": contact_id}
            for position, contact_id in enumerate(ids)
        ]
        async with self._database.session() as session:
            connection = await session.connection()
            for start in range(0, len(rows), INSERT_CHUNK):
                await connection.execute(insert(BulkListItem), rows[start : start + INSERT_CHUNK])
            await session.commit()
        return list_id, len(ids)

    async def start(
        self,
        journey: str,
        *,
        segment: str | None = None,
        contact_ids: Sequence[object] | None = None,
        starts_per_second: float | None = None,
        requested_by: str = "api",
    ) -> BulkStarted:
        """Start enrolling a segment's members or a list's ids in `journey`.

        Raises UnknownJourneyError, UnknownSegmentError or BulkInputError before anything is
        stored or started.
        """
        cls = catalog.get(journey)
        if (segment is None) == (contact_ids is None):
            raise BulkInputError("give either a segment or a list of contact ids")
        rate = starts_per_second or self._settings.bulk_starts_per_second
        if not 0 < rate <= 10_000:
            raise BulkInputError("starts_per_second must be above 0 and at most 10000")
        list_id: str | None = None
        if segment is not None:
            get_segment(segment)
            async with self._database.session() as session:
                total = await segment_count(
                    session, segment, now=datetime.now(UTC), settings=self._settings
                )
        else:
            assert contact_ids is not None
            list_id, total = await self.create_list(contact_ids)
        bulk_id = uuid.uuid4().hex
        request = BulkEnrollmentInput(
            journey=cls.name,
            segment=segment,
            list_id=list_id,
            starts_per_second=rate,
            requested_by=requested_by,
        )
        source = source_of(request)
        workflow_id = workflow_id_of(cls.name, bulk_id)
        await self._client.start_workflow(
            BULK_ENROLLMENT,
            request,
            id=workflow_id,
            task_queue=self._settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo={MEMO_SOURCE: source, MEMO_TOTAL: total},
            static_summary=f"Bulk enrollment in {cls.name} from {source}",
            static_details=(
                f"Enrolls about {total} contacts from `{source}` in `{cls.name}`, at most "
                f"{rate:g} per second. Requested by `{requested_by}`."
            ),
            rpc_timeout=RPC_TIMEOUT,
        )
        return BulkStarted(bulk_id, workflow_id, cls.name, source, total, rate)

    async def progress(self, journey: str, bulk_id: str) -> BulkProgress:
        """The live progress while it runs; the final one (the result) once it completed."""
        if not _BULK_ID.match(bulk_id):
            raise UnknownBulkEnrollmentError(bulk_id)
        handle = self._client.get_workflow_handle(
            workflow_id_of(journey, bulk_id), result_type=BulkProgress
        )
        try:
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise UnknownBulkEnrollmentError(bulk_id) from err
            raise
        if description.workflow_type != BULK_ENROLLMENT:
            raise UnknownBulkEnrollmentError(bulk_id)
        status = description.status
        if status == WorkflowExecutionStatus.COMPLETED:
            final: BulkProgress = await handle.result(rpc_timeout=RPC_TIMEOUT)
            return final
        try:
            progress: BulkProgress = await handle.query(
                PROGRESS_QUERY, result_type=BulkProgress, rpc_timeout=QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TimeoutError):
            if status == WorkflowExecutionStatus.RUNNING:
                raise ProgressUnavailableError(
                    "no worker answered the progress query; is a worker running?"
                ) from None
            # Closed without a result (failed, terminated...), and no worker to replay it.
            progress = BulkProgress(
                journey=journey,
                source=str(await description.memo_value(MEMO_SOURCE, "")),
                starts_per_second=0.0,
                total=int(await description.memo_value(MEMO_TOTAL, 0)),
            )
        if status != WorkflowExecutionStatus.RUNNING:
            progress.status = "failed"
            progress.eta_seconds = None
            progress.finished_at = description.close_time
        return progress


def summary(progress: BulkProgress) -> str:
    """The one-line progress sentence (the same the Temporal UI shows)."""
    return describe(progress)
