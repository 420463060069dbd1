"""Contacts, and the enrollments of one contact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from api.deps import DatabaseDep, EnrollmentsDep, SessionDep
from api.schemas.common import ContactId, ErrorOut
from api.schemas.contacts import ContactPublic, ContactUpsert
from api.schemas.journeys import EnrollmentPublic, ExitIn, ExitOut, StepPublic
from api.services.contacts import get_contact, upsert_contact
from journeyman.enrollments import ContactEnrollment

router = APIRouter(prefix="/contacts", tags=["contacts"])

ContactIdPath = Annotated[ContactId, Path(description="The backend's id for the person.")]


@router.put(
    "/{contact_id}",
    response_model=ContactPublic,
    responses={201: {"model": ContactPublic, "description": "Created."}},
)
async def put_contact(
    contact_id: ContactIdPath,
    contact_in: ContactUpsert,
    session: SessionDep,
    database: DatabaseDep,
    response: Response,
) -> ContactPublic:
    """Create or update a contact: 201 when created, 200 when updated.

    Fields left out keep their stored value, `null` clears one, `attributes` is replaced.
    """
    contact, created = await upsert_contact(
        session=session, dialect=database.dialect, contact_id=contact_id, contact_in=contact_in
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return ContactPublic.model_validate(contact)


@router.get("/{contact_id}", response_model=ContactPublic, responses={404: {"model": ErrorOut}})
async def read_contact(contact_id: ContactIdPath, session: SessionDep) -> ContactPublic:
    return ContactPublic.model_validate(await get_contact(session=session, contact_id=contact_id))


@router.get(
    "/{contact_id}/journeys",
    response_model=list[EnrollmentPublic],
    responses={404: {"model": ErrorOut}},
)
async def list_contact_journeys(
    contact_id: ContactIdPath, session: SessionDep, enrollments: EnrollmentsDep
) -> list[EnrollmentPublic]:
    """Every enrollment of the contact, oldest first; running ones with their live state."""
    await get_contact(session=session, contact_id=contact_id)
    return [_public(e) for e in await enrollments.contact_enrollments(contact_id)]


@router.post(
    "/{contact_id}/journeys/{name}/exit",
    response_model=ExitOut,
    responses={404: {"model": ErrorOut, "description": "Unknown journey or none running."}},
)
async def exit_journey(
    contact_id: ContactIdPath, name: str, exit_in: ExitIn, enrollments: EnrollmentsDep
) -> ExitOut:
    """End the contact's running enrollment in a journey now (it records `exited`)."""
    result = await enrollments.exit(name, contact_id, exit_in.key, exit_in.reason)
    if not result.exited:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"contact '{contact_id}' has no running enrollment in '{name}'"
            + (f" for key '{exit_in.key}'" if exit_in.key else ""),
        )
    return ExitOut(journey=result.journey, contact_id=result.contact_id, exited=result.exited)


def _public(enrollment: ContactEnrollment) -> EnrollmentPublic:
    live = enrollment.live
    return EnrollmentPublic(
        workflow_id=enrollment.workflow_id,
        run_id=enrollment.run_id,
        journey=enrollment.journey,
        version=enrollment.version,
        key=enrollment.key,
        # The workflow knows before its row does (the row is written by an activity).
        status=live.status if live else enrollment.status,
        ended_by=live.ended_by if live else enrollment.ended_by,
        current_step=live.current_step if live else enrollment.current_step,
        entered_at=enrollment.entered_at,
        ended_at=enrollment.ended_at,
        source="live" if live else "database",
        waiting_for=live.waiting_for if live else [],
        wait_until=live.wait_until if live else None,
        steps=[
            StepPublic(name=s.name, kind=s.kind, at=s.at, outcome=s.outcome)
            for s in (live.steps if live else [])
        ],
    )
