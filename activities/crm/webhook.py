"""The generic CRM connector: signed JSON to the team's own endpoint, both directions.

Outbound, Journeyman POSTs to `JOURNEYMAN_CRM_WEBHOOK_URL`, signed like the webhook channel
(`activities/channels/webhook.py`): header `X-Journeyman-Timestamp` (unix seconds) and
`X-Journeyman-Signature: v1=<hex HMAC-SHA256(JOURNEYMAN_CRM_WEBHOOK_SECRET, "{timestamp}.{body}")>`.

    {"type": "contacts.upsert",
     "contacts": [{"contact_id": "c-42", "email": "ada@example.com", "crm_id": "123" | null,
                   "properties": {"journeyman_score": 57, "lifecyclestage": "lead"}}]}

    {"type": "task.create",
     "task": {"task_id": "...", "contact_id": "c-42", "crm_id": "123" | null,
              "email": "ada@example.com", "owner_id": "77" | null, "subject": "...",
              "body": "...", "due_at": "2026-03-01T09:00:00+00:00"}}

The task call also carries `Idempotency-Key: <task_id>`, so a receiver can drop a retry of a
task it already created. The receiver answers:
- 2xx: done. For an upsert the body may be `{"results": [{"contact_id", "crm_id", "error"}]}`:
  a `crm_id` is stored as the contact's CRM id, an `error` is recorded for that contact and
  not retried; contacts it does not name succeeded with the `crm_id` they were sent with. For
  a task, `{"id": "..."}` names the receiver's task; without it the task id is our `task_id`.
- 429 (with `Retry-After`), 5xx, 401/403, a timeout: retried later (see `http.py`).
- another 4xx: the whole call is refused and recorded with the receiver's message.

Inbound, `POST /v1/webhooks/crm` takes, signed the same way with the same secret:

    {"events": [{"id": "evt-1", "contact_id": "c-42",       # or "crm_id": "123"
                 "changes": {"lifecyclestage": "customer", "phone": "+44..."},
                 "occurred_at": "2026-03-01T09:00:00Z"}]}

`id` is unique per event (a redelivery repeats it: applying is idempotent on it), `changes`
maps remote field names to their new values (string, number, boolean or null), `occurred_at`
is ISO 8601 (no offset means UTC). `parse_generic_webhook` turns it into one `InboundChange`
per changed field; the changes of one event share its `event_id`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from activities.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_webhook,
    verify_webhook_signature,
)
from activities.crm.base import (
    CrmContact,
    CrmTaskRequest,
    InboundChange,
    InvalidInboundPayload,
    PropertyValue,
    UpsertOutcome,
)
from activities.crm.http import json_body, post_json
from journeyman.settings import Settings

UPSERT_TYPE = "contacts.upsert"
TASK_TYPE = "task.create"
# The `crm_inbound_events.id` column holds 300 characters; ids are ours to bound.
EVENT_ID_MAX = 200
ERROR_MAX = 300


class WebhookCrmConnector:
    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: str,
        http: httpx.AsyncClient,
        timeout: float,
        max_batch: int = 100,
    ) -> None:
        self.url = url
        self.secret = secret
        self.http = http
        self.timeout = timeout
        self.max_batch = max_batch

    @classmethod
    def from_settings(cls, settings: Settings, *, http: httpx.AsyncClient) -> WebhookCrmConnector:
        if not settings.crm_webhook_url.strip():
            raise ValueError("JOURNEYMAN_CRM=webhook needs JOURNEYMAN_CRM_WEBHOOK_URL")
        return cls(
            url=settings.crm_webhook_url.strip(),
            secret=settings.crm_webhook_secret,
            http=http,
            timeout=settings.provider_timeout_seconds,
            max_batch=settings.crm_batch_size,
        )

    async def upsert_contacts(self, contacts: Sequence[CrmContact]) -> list[UpsertOutcome]:
        if len(contacts) > self.max_batch:
            raise ValueError(f"{len(contacts)} contacts in one call; the most is {self.max_batch}")
        if not contacts:
            return []
        payload = {
            "type": UPSERT_TYPE,
            "contacts": [
                {
                    "contact_id": contact.contact_id,
                    "email": contact.email,
                    "crm_id": contact.crm_id,
                    "properties": dict(contact.properties),
                }
                for contact in contacts
            ],
        }
        response = await self._post(payload, {})
        outcomes = {
            contact.contact_id: UpsertOutcome(contact_id=contact.contact_id, crm_id=contact.crm_id)
            for contact in contacts
        }
        body = json_body(response)
        results = body.get("results") if isinstance(body, dict) else None
        for result in results if isinstance(results, list) else []:
            outcome = (
                outcomes.get(str(result.get("contact_id"))) if isinstance(result, dict) else None
            )
            if outcome is None or not isinstance(result, dict):
                continue  # a contact we did not send: nothing to record it on
            if result.get("crm_id") not in (None, ""):
                outcome.crm_id = str(result["crm_id"])
            if result.get("error") not in (None, ""):
                outcome.error = str(result["error"])[:ERROR_MAX]
        return list(outcomes.values())

    async def create_task(self, task: CrmTaskRequest) -> str:
        payload = {
            "type": TASK_TYPE,
            "task": {
                "task_id": task.task_id,
                "contact_id": task.contact_id,
                "crm_id": task.crm_id,
                "email": task.email,
                "owner_id": task.owner_id,
                "subject": task.subject,
                "body": task.body,
                "due_at": task.due_at.isoformat(),
            },
        }
        response = await self._post(payload, {"Idempotency-Key": task.task_id})
        body = json_body(response)
        named = body.get("id") if isinstance(body, dict) else None
        return str(named) if named not in (None, "") else task.task_id

    async def _post(self, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
        # Signed at each attempt, so a retry much later is not refused as stale.
        timestamp = str(int(time.time()))
        return await post_json(
            self.http,
            self.url,
            content=body,
            headers={
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign_webhook(self.secret, timestamp, body),
                **headers,
            },
            time_limit=self.timeout,
            crm=self.name,
        )


def verify_generic_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime | None = None
) -> bool:
    """True if `body` carries a valid, recent Journeyman signature made with `secret`.

    `headers` may be any mapping (Starlette's are case-insensitive, a dict need not be). An
    empty secret verifies nothing: anyone can sign with it.
    """
    if not secret:
        return False
    lowered = {name.lower(): value for name, value in headers.items()}
    return verify_webhook_signature(
        secret,
        lowered.get(TIMESTAMP_HEADER.lower(), ""),
        body,
        lowered.get(SIGNATURE_HEADER.lower(), ""),
        now=now,
    )


def parse_generic_webhook(body: bytes) -> list[InboundChange]:
    """The changes in a generic inbound webhook (format in the module docstring).

    Raises `InvalidInboundPayload` (a ValueError) saying what is wrong, for a 400.
    """
    try:
        document = json.loads(body)
    except ValueError as err:  # also bad UTF-8
        raise InvalidInboundPayload(f"body is not JSON: {err}") from err
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise InvalidInboundPayload('expected {"events": [...]}')
    changes: list[InboundChange] = []
    for index, event in enumerate(events):
        changes.extend(_event_changes(event, f"events[{index}]"))
    return changes


def _event_changes(event: Any, where: str) -> list[InboundChange]:
    if not isinstance(event, dict):
        raise InvalidInboundPayload(f"{where} is not an object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > EVENT_ID_MAX:
        raise InvalidInboundPayload(
            f"{where}.id must be a string of 1 to {EVENT_ID_MAX} characters"
        )
    contact_id = _optional_id(event, "contact_id", where)
    crm_id = _optional_id(event, "crm_id", where)
    if contact_id is None and crm_id is None:
        raise InvalidInboundPayload(f"{where} names neither contact_id nor crm_id")
    fields = event.get("changes")
    if not isinstance(fields, dict) or not fields:
        raise InvalidInboundPayload(f"{where}.changes must be a non-empty object")
    occurred_at = _timestamp(event.get("occurred_at"), f"{where}.occurred_at")
    return [
        InboundChange(
            event_id=event_id,
            contact_id=contact_id,
            crm_id=crm_id,
            remote_field=name,
            value=_value(value, f"{where}.changes.{name}"),
            occurred_at=occurred_at,
        )
        for name, value in fields.items()
    ]


def _optional_id(event: dict[str, Any], key: str, where: str) -> str | None:
    value = event.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInboundPayload(f"{where}.{key} must be a string")
    return str(value)


def _value(value: Any, where: str) -> PropertyValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidInboundPayload(f"{where} must be a string, number, boolean or null")


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInboundPayload(f"{where} must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise InvalidInboundPayload(f"{where} is not an ISO 8601 date-time: {value!r}") from err
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
