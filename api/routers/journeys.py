"""Journeys: the catalog, and starting one by hand."""

from __future__ import annotations

from typing import NoReturn

from fastapi import APIRouter, HTTPException, status

from api.deps import DatabaseDep, EnrollmentsDep, SessionDep
from api.schemas.common import ErrorOut
from api.schemas.journeys import (
    EnrollmentCreate,
    EnrollmentStarted,
    JourneyName,
    JourneyPublic,
    JourneyVersionPublic,
)
from api.services.contacts import get_contact
from journeyman.catalog_info import catalog_overview
from workflows import catalog
from workflows.contracts import StartJourneyRequest

router = APIRouter(prefix="/journeys", tags=["journeys"])


@router.get("", response_model=list[JourneyPublic])
async def list_journeys(database: DatabaseDep) -> list[JourneyPublic]:
    """Every journey, as declared in code, with the version new enrollments start on and
    how many enrollments run on each version."""
    details: dict[str, list[JourneyVersionPublic]] = {}
    for info in await catalog_overview(database):
        details.setdefault(info.name, []).append(
            JourneyVersionPublic(
                version=info.version,
                newest=info.newest,
                active=info.active,
                in_code=info.in_code,
                description=info.description,
            )
        )
    return [
        JourneyPublic(
            name=cls.name,
            version=cls.version,
            versions=[detail.version for detail in details[cls.name] if detail.in_code],
            version_details=details[cls.name],
            description=cls.description,
            triggers=list(cls.triggers),
            goals=list(cls.goals),
            exits=list(cls.exits),
            waits_for=list(cls.waits_for),
            key=cls.key,
            reentry=cls.reentry,
        )
        for cls in catalog.latest()
    ]


@router.post(
    "/{name}/enrollments",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentStarted,
    responses={
        404: {"model": ErrorOut, "description": "Unknown journey or contact."},
        409: {"model": ErrorOut, "description": "Already running, or re-entry refused."},
        422: {"model": ErrorOut, "description": "Key missing for a keyed journey, or extra."},
    },
)
async def enroll(
    name: JourneyName,
    enrollment_in: EnrollmentCreate,
    session: SessionDep,
    enrollments: EnrollmentsDep,
) -> EnrollmentStarted:
    """Start a contact on a journey by hand, without a trigger event."""
    cls = catalog.get(name)
    if cls.key is not None and enrollment_in.key is None:
        _unprocessable(f"journey '{name}' is keyed by '{cls.key}': give a key")
    if cls.key is None and enrollment_in.key is not None:
        _unprocessable(f"journey '{name}' is not keyed: leave out the key")
    await get_contact(session=session, contact_id=enrollment_in.contact_id)
    result = await enrollments.start(
        StartJourneyRequest(
            journey=name,
            contact_id=enrollment_in.contact_id,
            key=enrollment_in.key,
        )
    )
    if result.action != "started":
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=_refusal(result.reason))
    return EnrollmentStarted(
        journey=result.journey, workflow_id=result.workflow_id, action="started"
    )


def _unprocessable(detail: str) -> NoReturn:
    raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def _refusal(reason: str | None) -> str:
    if reason == "reentry_never":
        return "the contact was already enrolled in this journey, which allows no re-entry"
    if reason == "already_active":
        return "the contact is already running through this journey"
    return f"not started: {reason}"
