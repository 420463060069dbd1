"""CRM changes coming in: `POST /v1/webhooks/crm` (signature-verified, outside the API key).

Two formats, told apart by a header:
- HubSpot's webhooks (`X-HubSpot-Signature-v3` present), verified with
  `JOURNEYMAN_HUBSPOT_CLIENT_SECRET` (unset: every HubSpot call is refused);
- the generic format of `activities/crm/webhook.py`, signed with
  `JOURNEYMAN_CRM_WEBHOOK_SECRET` (`X-Journeyman-Timestamp`, `X-Journeyman-Signature`).

The signature is checked over the raw bytes before the body is parsed: an unauthenticated
caller learns nothing but 401. An authentic body that is malformed is 422; otherwise 200 with
an outcome per change (see `journeyman.crm.inbound`), including changes about unknown
contacts, since CRMs retry any non-2xx and one unknown contact must not hold back a batch.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from activities.crm import (
    REQUEST_TIMESTAMP_HEADER,
    SIGNATURE_V3_HEADER,
    InboundChange,
    InvalidInboundPayload,
    parse_generic_webhook,
    parse_hubspot_webhook,
    verify_generic_webhook,
    verify_hubspot_signature_v3,
)
from api.deps import DatabaseDep, EnrollmentsDep, SettingsDep
from api.routers.events import routing_public
from api.schemas.common import ErrorOut
from api.schemas.crm import CrmChangeOut, CrmWebhookOut
from journeyman.crm.inbound import InboundApplier
from journeyman.crm.mapping import crm_mapping
from journeyman.settings import Settings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

HOW = (
    "this route takes no API key: send a HubSpot webhook signed with the app's client secret "
    "(X-HubSpot-Signature-v3), or the generic format signed with JOURNEYMAN_CRM_WEBHOOK_SECRET "
    "(X-Journeyman-Timestamp, X-Journeyman-Signature)"
)


def _refused(reason: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=f"{reason}; {HOW}")


def _hubspot_uris(request: Request, settings: Settings) -> list[str]:
    """The URL HubSpot signed: ours as the public URL names it (behind a proxy), or as this
    request arrived."""
    query = f"?{request.url.query}" if request.url.query else ""
    public = f"{settings.public_url.rstrip('/')}{request.url.path}{query}"
    return list(dict.fromkeys([public, str(request.url)]))


def _authentic_changes(request: Request, settings: Settings, body: bytes) -> list[InboundChange]:
    headers = request.headers
    signature = headers.get(SIGNATURE_V3_HEADER)
    try:
        if signature is not None:
            timestamp = headers.get(REQUEST_TIMESTAMP_HEADER, "")
            if not settings.hubspot_client_secret:
                raise _refused(
                    "HubSpot webhooks are off: JOURNEYMAN_HUBSPOT_CLIENT_SECRET is unset"
                )
            if not any(
                verify_hubspot_signature_v3(
                    settings.hubspot_client_secret, request.method, uri, body, timestamp, signature
                )
                for uri in _hubspot_uris(request, settings)
            ):
                raise _refused("bad or stale HubSpot signature")
            return parse_hubspot_webhook(body)
        if not verify_generic_webhook(settings.crm_webhook_secret, headers, body):
            raise _refused("missing, bad or stale signature")
        return parse_generic_webhook(body)
    except InvalidInboundPayload as err:
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"malformed body: {err}"
        ) from None


@router.post(
    "/crm",
    response_model=CrmWebhookOut,
    responses={
        401: {"model": ErrorOut, "description": "Missing, bad or stale signature."},
        413: {"model": ErrorOut, "description": "Body over JOURNEYMAN_MAX_REQUEST_BYTES."},
        422: {"model": ErrorOut, "description": "Authentic, but not the format it claims."},
        503: {"model": ErrorOut, "description": "Database or Temporal unreachable; retry."},
    },
)
async def crm_webhook(
    request: Request, settings: SettingsDep, database: DatabaseDep, enrollments: EnrollmentsDep
) -> CrmWebhookOut:
    """Contact changes from the CRM, for fields mapped `pull` or `both`.

    A change applies when it is newer than the field's latest change on either side; a
    lifecycle stage change emits the event `lifecycle.<stage>` (id `crm:<change id>`), stored
    and routed like any event, so `lifecycle.customer` can start journeys. Redelivering a
    change is safe: it answers `duplicate` and changes nothing.
    """
    changes = _authentic_changes(request, settings, await request.body())
    applier = InboundApplier(database=database, mapping=crm_mapping(settings))
    answers: list[CrmChangeOut] = []
    for outcome in await applier.apply(changes):
        answer = CrmChangeOut(
            event_id=outcome.event_id,
            field=outcome.field,
            outcome=outcome.outcome,
            contact_id=outcome.contact_id,
        )
        if outcome.event is not None:
            answer.event = outcome.event.id
            answer.journeys = routing_public(await enrollments.route_and_record(outcome.event))
        answers.append(answer)
    return CrmWebhookOut(changes=answers)
