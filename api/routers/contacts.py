"""Contacts: profile, consent, enrollments and messages of one contact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import AfterValidator

from api.deps import (
    ClientDep,
    ConsentDep,
    DatabaseDep,
    EnrollmentsDep,
    SessionDep,
    SettingsDep,
)
from api.routers.events import routing_public
from api.schemas.common import ContactId, ErrorOut
from api.schemas.contacts import (
    ConsentEventPublic,
    ContactPublic,
    ContactUpsert,
    Subscriptions,
    SubscriptionsPublic,
    SubscriptionsUpdate,
)
from api.schemas.erasure import ErasureOut
from api.schemas.journeys import EnrollmentPublic, ExitIn, ExitOut, JourneyName, StepPublic
from api.schemas.messages import DEFAULT_PAGE, MAX_PAGE, MessagePage, MessagePublic
from api.services.contacts import get_contact, upsert_contact
from api.services.messages import check_cursor, contact_messages
from journeyman.crm.mapping import crm_mapping
from journeyman.enrollments import ContactEnrollment
from journeyman.erasure import ErasureService, UnknownContactError
from journeyman.segments.entry import entry_checker
from journeyman.unsubscribe import ConsentState
from persistence import Contact
from persistence.models import CONSENT_CHANNELS

router = APIRouter(prefix="/contacts", tags=["contacts"])

ContactIdPath = Annotated[
    ContactId, Path(description="The backend's id for the person.", examples=["c-1042"])
]


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
    consent: ConsentDep,
    settings: SettingsDep,
    enrollments: EnrollmentsDep,
    response: Response,
) -> ContactPublic:
    """Create or update a contact: 201 when created, 200 when updated.

    Fields left out keep their stored value, `null` clears one, `attributes` is replaced.
    `subscriptions` works as `PUT .../subscriptions` does on an existing contact (each change
    is an event); a new contact simply starts with the consent given.
    """
    contact, created = await upsert_contact(
        session=session,
        dialect=database.dialect,
        contact_id=contact_id,
        contact_in=contact_in,
        crm_mapping=crm_mapping(settings),
        # New attributes may put the contact in a segment a journey enters on.
        after_commit=entry_checker(database, settings, enrollments.start),
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    elif contact_in.subscriptions is not None:
        await consent.change(contact_id, contact_in.subscriptions.wanted(), source="api")
        contact = await get_contact(session=session, contact_id=contact_id)
    return _contact_public(contact)


@router.get("/{contact_id}", response_model=ContactPublic, responses={404: {"model": ErrorOut}})
async def read_contact(contact_id: ContactIdPath, session: SessionDep) -> ContactPublic:
    return _contact_public(await get_contact(session=session, contact_id=contact_id))


@router.delete(
    "/{contact_id}",
    response_model=ErasureOut,
    responses={404: {"model": ErrorOut, "description": "Never known, never erased."}},
)
async def erase_contact(
    contact_id: ContactIdPath, client: ClientDep, database: DatabaseDep, settings: SettingsDep
) -> ErasureOut:
    """Erase the contact (GDPR): end its running journeys and scorer, delete its profile,
    events, score history, memberships and CRM rows, anonymise its messages and enrollments
    (kept for the stats under a pseudonym), and record the erasure (no personal data).

    Safe to repeat: a contact already erased answers 200 with the same record (after sweeping
    again). An id that comes back in a later event is a new, bare contact.
    """
    service = ErasureService(client=client, database=database, settings=settings)
    try:
        record = await service.erase(contact_id)
    except UnknownContactError as err:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=str(err)) from err
    return ErasureOut.model_validate(record, from_attributes=True)


@router.put(
    "/{contact_id}/subscriptions",
    response_model=SubscriptionsPublic,
    responses={404: {"model": ErrorOut}},
)
async def put_subscriptions(
    contact_id: ContactIdPath, update: SubscriptionsUpdate, consent: ConsentDep
) -> SubscriptionsPublic:
    """Set the contact's consent to marketing per channel; channels left out keep theirs.

    Each change records an event, routed like any other: `unsubscribed` (so journeys that
    exit on it end now) or `subscribed`, with properties `{"channel", "source": "api"}`.
    Repeating the request changes nothing and records nothing.
    """
    return _subscriptions_public(await consent.change(contact_id, update.wanted(), source="api"))


@router.get(
    "/{contact_id}/messages", response_model=MessagePage, responses={404: {"model": ErrorOut}}
)
async def list_contact_messages(
    contact_id: ContactIdPath,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None,
        Query(max_length=2000, description="`next_cursor` of the previous page."),
        AfterValidator(check_cursor),
    ] = None,
) -> MessagePage:
    """The contact's messages, newest first: sent, failed and suppressed, with the reason."""
    await get_contact(session=session, contact_id=contact_id)
    page, next_cursor = await contact_messages(
        session=session, contact_id=contact_id, limit=limit, cursor=cursor
    )
    return MessagePage(
        messages=[MessagePublic.model_validate(m, from_attributes=True) for m in page],
        next_cursor=next_cursor,
    )


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
    contact_id: ContactIdPath, name: JourneyName, exit_in: ExitIn, enrollments: EnrollmentsDep
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


def _subscriptions(contact: Contact) -> Subscriptions:
    return Subscriptions(**{channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS})


def _contact_public(contact: Contact) -> ContactPublic:
    return ContactPublic(
        contact_id=contact.contact_id,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone,
        locale=contact.locale,
        attributes=contact.attributes,
        lifecycle_stage=contact.lifecycle_stage,
        subscriptions=_subscriptions(contact),
        consent_updated_at=contact.consent_updated_at,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def _subscriptions_public(state: ConsentState) -> SubscriptionsPublic:
    return SubscriptionsPublic(
        contact_id=state.contact_id,
        subscriptions=Subscriptions(**state.consent),
        consent_updated_at=state.consent_updated_at,
        events=[
            ConsentEventPublic(
                id=e.id, name=e.name, channel=e.channel, journeys=routing_public(e.journeys)
            )
            for e in state.events
        ],
    )


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
