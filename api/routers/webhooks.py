"""Provider feedback on sent emails: `POST /v1/webhooks/email`.

Mounted outside the API-key dependency of /v1: providers cannot send our API key, so each
format authenticates with its own scheme (see `journeyman.feedback`), and, as for the API
key, before anything else of the body is looked at: an unauthenticated caller learns
nothing but 401. A body with a `signature` object is Mailgun's; any other needs the bearer
feedback secret.

Answers 200 with an outcome per event whenever the request is authentic and well-formed,
also for events about unknown messages: providers retry any non-2xx, and one unknown id must
not hold back a batch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from pydantic import ValidationError

from api.deps import ConsentDep, DatabaseDep, SettingsDep
from api.schemas.common import ErrorOut
from api.schemas.feedback import (
    FeedbackIn,
    FeedbackOut,
    FeedbackOutcomeOut,
    MailgunSignatureIn,
    WebhookBody,
)
from journeyman.feedback import (
    FeedbackAuthError,
    FeedbackService,
    check_bearer,
    check_mailgun_signature,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

HOW = (
    "this route takes no API key: send 'Authorization: Bearer <JOURNEYMAN_FEEDBACK_SECRET>' "
    "with Journeyman's format, or a Mailgun-signed event"
)


def _refused(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=f"{reason}; {HOW}",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _authenticate(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    try:
        document: Any = json.loads(await request.body())
    except ValueError:  # not JSON (UnicodeDecodeError is one too): only a bearer can say who
        document = None
    signed = document.get("signature") if isinstance(document, dict) else None
    try:
        if signed is None:
            check_bearer(settings, authorization)
            return
        try:
            signature = MailgunSignatureIn.model_validate(signed).to_signature()
        except ValidationError:
            raise FeedbackAuthError("malformed Mailgun signature") from None
        check_mailgun_signature(settings, signature, datetime.now(UTC))
    except FeedbackAuthError as err:
        raise _refused(str(err)) from None


@router.post(
    "/email",
    response_model=FeedbackOut,
    dependencies=[Depends(_authenticate)],
    responses={
        401: {"model": ErrorOut, "description": "Wrong secret; bad, stale or replayed signature."},
        413: {"model": ErrorOut, "description": "Body over JOURNEYMAN_MAX_REQUEST_BYTES."},
        422: {"model": ErrorOut, "description": "Not a known format, or malformed."},
        503: {"model": ErrorOut, "description": "Database or Temporal unreachable; retry."},
    },
)
async def email_feedback(
    body: WebhookBody, database: DatabaseDep, consent: ConsentDep
) -> FeedbackOut:
    """Delivery, bounce and complaint events, in Journeyman's format or Mailgun's.

    - Journeyman: `{"events": [{"id", "type": "delivered" | "bounced" | "complained",
      "message_id", "bounce": "hard" | "soft", "at", "detail"}]}` with
      `Authorization: Bearer <JOURNEYMAN_FEEDBACK_SECRET>`.
    - Mailgun: its event webhook body, signed with `JOURNEYMAN_MAILGUN_SIGNING_KEY`; each
      signature token is honoured once.

    A hard bounce or a complaint withdraws the contact's email consent (an `unsubscribed`
    event, routed). Each event is `applied`, `duplicate` (its id was seen) or `ignored`.
    """
    batch = body.to_batch(datetime.now(UTC)) if isinstance(body, FeedbackIn) else body.to_batch()
    try:
        report = await FeedbackService(database=database, consent=consent).apply(batch)
    except FeedbackAuthError as err:  # a replayed Mailgun token
        raise _refused(str(err)) from None
    return FeedbackOut(events=[FeedbackOutcomeOut.of(outcome) for outcome in report.events])
