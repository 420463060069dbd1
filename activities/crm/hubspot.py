"""HubSpot: contacts and tasks through the CRM v3 API, and its inbound webhooks.

Calls (a private app's access token as `Authorization: Bearer ...`):
- `POST /crm/v3/objects/contacts/batch/upsert` with `{"inputs": [{"id": <email>, "idProperty":
  "email", "properties": {...}}]}`: creates or updates by email, at most 100 inputs (HubSpot's
  batch limit; more is refused here, the caller chunks by `max_batch`). Each input carries
  `objectWriteTraceId` = our contact id: that opts in to HubSpot's multi-status answers
  (developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors"), so one
  invalid email does not fail the other 99. HubSpot answers 200 with `results` (`id`,
  `properties`, `objectWriteTraceId`...), or 207 with `results` for the inputs it took and
  `errors` for the ones it refused; an error's `context.objectWriteTraceId` (else
  `context.ids`, the email) is how it reaches its contact's `UpsertOutcome.error`. `email` is
  also sent as a property so a result without a trace id can still be matched by it. A 400
  for the whole batch (a validation error HubSpot does not attribute) is `CrmRejected` for
  all of its contacts.
- `POST /crm/v3/objects/tasks` with `hs_timestamp` (due), `hs_task_subject`, `hs_task_body`,
  `hs_task_status` NOT_STARTED, `hs_task_priority` HIGH, `hubspot_owner_id` (the request's
  owner) and an association to the contact (HUBSPOT_DEFINED, type 204 task -> contact).

Choices:
- A contact without an email gets the outcome error `no_email`, even when its `crm_id` is
  known: every contact Journeyman pushes is identified by email, and updating by id would
  need a second call shape for a rare case (a contact whose email was removed).
- Two contacts of one call with the same email (HubSpot would refuse the whole batch): the
  first is sent, the others get `duplicate_email` (they would overwrite each other).
- A task for a contact with no `crm_id` upserts the contact by email first (no properties) to
  learn its id; the caller should still upsert contacts first and store their ids.
- Error sorting is `activities/crm/http.py`'s: 429 -> `CrmRateLimited` (`Retry-After`, else
  10 s), 5xx/timeouts/connection errors -> `CrmUnavailable`, 401/403 -> `CrmUnavailable` (an
  operator fixes the token or its scopes; contacts are not failed for good meanwhile), any
  other 4xx -> `CrmRejected` with HubSpot's category and message.

Inbound: HubSpot POSTs a JSON array of events (`contact.propertyChange`: `eventId`,
`objectId`, `propertyName`, `propertyValue`, `occurredAt` in ms) signed with the app's client
secret, `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(secret, method + uri + body + timestamp))
and `X-HubSpot-Request-Timestamp` in ms; requests older than 5 minutes are refused
(developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from activities.crm.base import (
    CrmContact,
    CrmRejected,
    CrmTaskRequest,
    InboundChange,
    InvalidInboundPayload,
    PropertyValue,
    UpsertOutcome,
)
from activities.crm.http import json_body, post_json
from journeyman.settings import Settings

UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
TASKS_PATH = "/crm/v3/objects/tasks"
BATCH_LIMIT = 100
TASK_TO_CONTACT = 204
NO_EMAIL = "no_email"
DUPLICATE_EMAIL = "duplicate_email"
MISSING_FROM_ANSWER = "missing_from_answer: HubSpot's answer named neither a result nor an error"
ERROR_MAX = 300

SIGNATURE_V3_HEADER = "X-HubSpot-Signature-v3"
REQUEST_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
SIGNATURE_MAX_AGE = timedelta(minutes=5)
# HubSpot signs the URI with these escapes decoded (its v3 validation instructions).
_URI_DECODES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
# Contact events of the legacy webhooks API and of the developer platform (0-1 is contacts).
_PROPERTY_CHANGE = "contact.propertyChange"
_OBJECT_PROPERTY_CHANGE = "object.propertyChange"
_CONTACT_OBJECT_TYPE = "0-1"


class HubSpotConnector:
    name = "hubspot"

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        http: httpx.AsyncClient,
        timeout: float,
        max_batch: int = BATCH_LIMIT,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token.strip()
        self.http = http
        self.timeout = timeout
        self.max_batch = min(max_batch, BATCH_LIMIT)

    @classmethod
    def from_settings(cls, settings: Settings, *, http: httpx.AsyncClient) -> HubSpotConnector:
        if not settings.hubspot_token.strip():
            raise ValueError("JOURNEYMAN_CRM=hubspot needs JOURNEYMAN_HUBSPOT_TOKEN")
        return cls(
            api_url=settings.hubspot_api_url,
            token=settings.hubspot_token.strip(),
            http=http,
            timeout=settings.provider_timeout_seconds,
            max_batch=settings.crm_batch_size,
        )

    async def upsert_contacts(self, contacts: Sequence[CrmContact]) -> list[UpsertOutcome]:
        if len(contacts) > self.max_batch:
            raise ValueError(f"{len(contacts)} contacts in one call; the most is {self.max_batch}")
        outcomes = {contact.contact_id: UpsertOutcome(contact.contact_id) for contact in contacts}
        if len(outcomes) < len(contacts):
            raise ValueError("a contact appears twice in one call: merge its changes first")
        by_email: dict[str, CrmContact] = {}
        for contact in contacts:
            outcome = outcomes[contact.contact_id]
            email = (contact.email or "").strip().lower()
            if not email:
                outcome.error = NO_EMAIL
            elif email in by_email:
                first = by_email[email].contact_id
                outcome.error = f"{DUPLICATE_EMAIL}: contact {first} has the same email"
            else:
                by_email[email] = contact
        if by_email:
            await self._upsert(by_email, outcomes)
        return list(outcomes.values())

    async def _upsert(
        self, by_email: dict[str, CrmContact], outcomes: dict[str, UpsertOutcome]
    ) -> None:
        inputs = [
            {
                "id": email,
                "idProperty": "email",
                "properties": {**_properties(contact.properties), "email": email},
                # Unique per input, which is what makes HubSpot answer 207 with the refused
                # inputs listed instead of failing the whole batch for one bad value.
                "objectWriteTraceId": contact.contact_id,
            }
            for email, contact in by_email.items()
        ]
        response = await self._post(UPSERT_PATH, {"inputs": inputs})
        body = json_body(response)
        by_trace = {contact.contact_id: contact for contact in by_email.values()}
        answered: set[str] = set()
        for result in _list(body, "results"):
            contact = by_trace.get(str(result.get("objectWriteTraceId"))) or by_email.get(
                str((result.get("properties") or {}).get("email") or "").lower()
            )
            if contact is not None and result.get("id") not in (None, ""):
                outcomes[contact.contact_id].crm_id = str(result["id"])
                answered.add(contact.contact_id)
        for error in _list(body, "errors"):
            message = _batch_error_text(error)
            traces, emails = _error_context(error, "objectWriteTraceId"), _error_ids(error)
            named = [by_trace[trace] for trace in traces if trace in by_trace] or [
                by_email[email] for email in emails if email in by_email
            ]
            for contact in named:
                outcomes[contact.contact_id].error = message
                answered.add(contact.contact_id)
        for contact in by_email.values():
            if contact.contact_id not in answered:
                outcomes[contact.contact_id].error = MISSING_FROM_ANSWER

    async def create_task(self, task: CrmTaskRequest) -> str:
        crm_id = task.crm_id or await self._crm_id_for(task)
        properties: dict[str, PropertyValue] = {
            "hs_timestamp": _hubspot_time(task.due_at),
            "hs_task_subject": task.subject,
            "hs_task_body": task.body,
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": "HIGH",
        }
        if task.owner_id:
            properties["hubspot_owner_id"] = task.owner_id
        payload = {
            "properties": properties,
            "associations": [
                {
                    "to": {"id": crm_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": TASK_TO_CONTACT,
                        }
                    ],
                }
            ],
        }
        response = await self._post(TASKS_PATH, payload)
        body = json_body(response)
        task_id = body.get("id") if isinstance(body, dict) else None
        if task_id in (None, ""):
            # 201 without an id: created, but nothing to link; say so rather than guess.
            raise CrmRejected(f"hubspot {response.status_code}: the answer has no task id")
        return str(task_id)

    async def _crm_id_for(self, task: CrmTaskRequest) -> str:
        contact = CrmContact(contact_id=task.contact_id, email=task.email, crm_id=None)
        (outcome,) = await self.upsert_contacts([contact])
        if outcome.crm_id is None:
            raise CrmRejected(
                f"hubspot: cannot associate the task with contact {task.contact_id}: "
                f"{outcome.error or 'no HubSpot id'}"
            )
        return outcome.crm_id

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        return await post_json(
            self.http,
            self.api_url + path,
            content=json.dumps(payload, ensure_ascii=False, allow_nan=False).encode(),
            # No token, no header (a bare "Bearer " is not even a legal header): HubSpot's 401.
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            time_limit=self.timeout,
            crm=self.name,
        )


def verify_hubspot_signature_v3(
    client_secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp_ms: str,
    signature: str,
    now: datetime | None = None,
) -> bool:
    """True if `signature` (X-HubSpot-Signature-v3) signs this request at `timestamp_ms`
    (X-HubSpot-Request-Timestamp) with the app's `client_secret`, and the timestamp is within
    5 minutes of `now` (either side). `uri` is the full URL HubSpot called, as configured in
    the app (scheme, host, path and query). An empty secret verifies nothing."""
    if not client_secret:
        return False
    try:
        signed_at = datetime.fromtimestamp(int(timestamp_ms) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return False
    if abs((now or datetime.now(UTC)) - signed_at) > SIGNATURE_MAX_AGE:
        return False
    for escaped, plain in _URI_DECODES.items():
        uri = uri.replace(escaped, plain).replace(escaped.lower(), plain)
    source = method.upper().encode() + uri.encode() + body + timestamp_ms.strip().encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    return hmac.compare_digest(expected, signature.strip().encode())


def parse_hubspot_webhook(body: bytes) -> list[InboundChange]:
    """The contact property changes in a HubSpot webhook body (other events are skipped).

    `event_id` is `hubspot:<eventId>:<objectId>:<propertyName>`: HubSpot does not promise
    `eventId` is unique on its own, and a redelivery repeats all three. Raises
    `InvalidInboundPayload` (a ValueError) for a body that is not a list of events.
    """
    try:
        events = json.loads(body)
    except ValueError as err:
        raise InvalidInboundPayload(f"body is not JSON: {err}") from err
    if not isinstance(events, list):
        raise InvalidInboundPayload("expected a JSON array of HubSpot events")
    changes: list[InboundChange] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or not _is_contact_change(event):
            continue
        where = f"[{index}]"
        event_id, object_id = event.get("eventId"), event.get("objectId")
        name, occurred = event.get("propertyName"), event.get("occurredAt")
        if event_id in (None, "") or object_id in (None, "") or not isinstance(name, str):
            raise InvalidInboundPayload(f"{where} lacks eventId, objectId or propertyName")
        if isinstance(occurred, bool) or not isinstance(occurred, int | float):
            raise InvalidInboundPayload(f"{where}.occurredAt must be milliseconds")
        value = event.get("propertyValue")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInboundPayload(f"{where}.propertyValue must be a scalar")
        changes.append(
            InboundChange(
                event_id=f"hubspot:{event_id}:{object_id}:{name}",
                contact_id=None,
                crm_id=str(object_id),
                remote_field=name,
                value=value,
                occurred_at=datetime.fromtimestamp(occurred / 1000, UTC),
            )
        )
    return changes


def _is_contact_change(event: dict[str, Any]) -> bool:
    kind = event.get("subscriptionType")
    if kind == _PROPERTY_CHANGE:
        return True
    return kind == _OBJECT_PROPERTY_CHANGE and event.get("objectTypeId") == _CONTACT_OBJECT_TYPE


def _properties(values: dict[str, PropertyValue]) -> dict[str, PropertyValue]:
    """HubSpot takes strings and numbers; booleans as "true"/"false", null clears as ""."""
    converted: dict[str, PropertyValue] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            converted[name] = "true" if value else "false"
        elif value is None:
            converted[name] = ""
        else:
            converted[name] = value
    return converted


def _hubspot_time(moment: datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _error_ids(error: dict[str, Any]) -> list[str]:
    """The emails a batch error names (`context.ids`: the inputs' `id`, our idProperty)."""
    return [one.strip().lower() for one in _error_context(error, "ids")]


def _error_context(error: dict[str, Any], key: str) -> list[str]:
    """One list of a batch error's `context` (HubSpot gives lists; a lone string is taken)."""
    context = error.get("context")
    values = context.get(key) if isinstance(context, dict) else None
    if isinstance(values, str):
        values = [values]
    return [str(one) for one in values] if isinstance(values, list) else []


def _batch_error_text(error: dict[str, Any]) -> str:
    kind = error.get("subCategory") or error.get("category") or "error"
    if isinstance(kind, dict):  # some APIs put an object here
        kind = error.get("category") or "error"
    return f"{kind}: {error.get('message') or 'refused by HubSpot'}"[:ERROR_MAX]
