"""Bulk enrollments: `POST /v1/journeys/{name}/bulk-enrollments` and their progress.

The body is JSON (`{"segment": ...}` or `{"contact_ids": [...]}`) or CSV (`Content-Type:
text/csv`: one id per line, or a header row with a `contact_id` column; the rate then comes
as the `starts_per_second` query parameter). Read by hand rather than declared, so one route
takes both; the OpenAPI schema still describes both.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import ClientDep, DatabaseDep, SettingsDep
from api.schemas.bulk import BulkEnrollmentCreate, BulkEnrollmentProgress, BulkEnrollmentStarted
from api.schemas.common import ErrorOut
from api.schemas.journeys import JourneyName
from journeyman.bulk import (
    MAX_IDS,
    BulkEnrollmentService,
    BulkInputError,
    ProgressUnavailableError,
    UnknownBulkEnrollmentError,
    UnknownSegmentError,
    parse_csv,
    summary,
    workflow_id_of,
)
from workflows import catalog

router = APIRouter(prefix="/journeys", tags=["bulk enrollments"])

# 100,000 ids of up to ~80 characters, with JSON quoting; anything bigger is refused unread.
MAX_BODY_BYTES = 8 * 1024 * 1024
_CSV_TYPES = {"text/csv", "application/csv", "text/plain"}

_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/BulkEnrollmentCreate"},
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "contact_id\nc-1\nc-2\n",
            },
        },
    }
}


def _service(
    client: ClientDep, database: DatabaseDep, settings: SettingsDep
) -> BulkEnrollmentService:
    return BulkEnrollmentService(client=client, database=database, settings=settings)


@router.post(
    "/{name}/bulk-enrollments",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkEnrollmentStarted,
    openapi_extra=_BODY_SCHEMA,
    responses={
        404: {"model": ErrorOut, "description": "Unknown journey."},
        413: {"model": ErrorOut, "description": "Body too large."},
        415: {"model": ErrorOut, "description": "Neither JSON nor CSV."},
        422: {"model": ErrorOut, "description": "Unknown segment, empty or bad list, bad CSV."},
    },
)
async def start_bulk_enrollment(
    name: JourneyName,
    request: Request,
    client: ClientDep,
    database: DatabaseDep,
    settings: SettingsDep,
    starts_per_second: Annotated[float | None, Query(gt=0, le=10_000)] = None,
) -> BulkEnrollmentStarted:
    """Enroll a segment's members or a list of contact ids, rate limited, in the background.

    Answers at once with the bulk enrollment's id; `progress_url` tells how far it is.
    Contacts already enrolled (as the journey's re-entry rule decides) and ids that are no
    contact are skipped, with the reason counted in the progress.
    """
    cls = catalog.get(name)
    body = await _read_body(request)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind in _CSV_TYPES:
        parsed = BulkEnrollmentCreate(
            contact_ids=_csv_ids(body), starts_per_second=starts_per_second
        )
    elif kind == "application/json" or kind.endswith("+json"):
        parsed = _json_body(body)
        parsed.starts_per_second = parsed.starts_per_second or starts_per_second
    else:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send application/json or text/csv, not {kind!r}",
        )
    service = _service(client, database, settings)
    try:
        started = await service.start(
            cls.name,
            segment=parsed.segment,
            contact_ids=parsed.contact_ids,
            starts_per_second=parsed.starts_per_second,
            requested_by="api",
        )
    except UnknownSegmentError as err:
        _unprocessable(f"unknown segment '{err.name}'")
    except BulkInputError as err:
        _unprocessable(str(err))
    return BulkEnrollmentStarted(
        id=started.id,
        workflow_id=started.workflow_id,
        journey=started.journey,
        source=started.source,
        total=started.total,
        starts_per_second=started.starts_per_second,
        progress_url=str(request.url_for("bulk_enrollment_progress", name=name, id=started.id)),
    )


@router.get(
    "/{name}/bulk-enrollments/{id}",
    name="bulk_enrollment_progress",
    response_model=BulkEnrollmentProgress,
    responses={404: {"model": ErrorOut, "description": "Unknown journey or bulk enrollment."}},
)
async def bulk_enrollment_progress(
    name: JourneyName,
    id: Annotated[str, Path(max_length=200, description="The id the start answered.")],
    client: ClientDep,
    database: DatabaseDep,
    settings: SettingsDep,
) -> BulkEnrollmentProgress:
    """How far a bulk enrollment is: done, started, skipped by reason, failed, rate, ETA."""
    cls = catalog.get(name)
    service = _service(client, database, settings)
    try:
        progress = await service.progress(cls.name, id)
    except UnknownBulkEnrollmentError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no bulk enrollment '{id}' in journey '{name}'"
        ) from None
    except ProgressUnavailableError as err:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, str(err), headers={"Retry-After": "5"}
        ) from None
    return BulkEnrollmentProgress(
        id=id,
        workflow_id=workflow_id_of(cls.name, id),
        journey=progress.journey,
        source=progress.source,
        status=progress.status,
        total=progress.total,
        done=progress.done,
        started=progress.started,
        skipped=progress.skipped,
        failed=progress.failed,
        errors=progress.errors,
        starts_per_second=progress.starts_per_second,
        rate=progress.rate,
        eta_seconds=progress.eta_seconds,
        started_at=progress.started_at,
        finished_at=progress.finished_at,
        summary=summary(progress),
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            _too_large()
    return bytes(body)


def _json_body(body: bytes) -> BulkEnrollmentCreate:
    try:
        return BulkEnrollmentCreate.model_validate_json(body)
    except ValidationError as err:
        # The same 422 shape as any declared body (see api/errors.py).
        raise RequestValidationError(err.errors(include_url=False)) from None


def _csv_ids(body: bytes) -> list[str]:
    try:
        return parse_csv(body.decode("utf-8"))
    except UnicodeDecodeError:
        _unprocessable("the CSV is not UTF-8 text")
    except BulkInputError as err:
        _unprocessable(str(err))


def _too_large() -> NoReturn:
    raise HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"body over {MAX_BODY_BYTES} bytes; a list holds at most {MAX_IDS} ids "
        "(larger audiences: use a segment)",
    )


def _unprocessable(detail: str) -> NoReturn:
    raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)
