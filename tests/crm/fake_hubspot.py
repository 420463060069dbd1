"""A local HubSpot: the CRM v3 endpoints the connector uses, on a real socket.

What it implements, and where the real shapes come from:

- `POST /crm/v3/objects/contacts/batch/upsert`, inputs `{"id": <email>, "idProperty": "email",
  "properties": {...}}` (developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/
  batch/upsert-contacts). 200 `{"status": "COMPLETE", "results": [{"id", "properties",
  "createdAt", "updatedAt", "archived": false, "new": bool}], "startedAt", "completedAt"}`.
  Multi-status is opt-in (docs/api-reference/error-handling, "Multi-status errors": a unique
  `objectWriteTraceId` on every input): then refused inputs come back as 207 with `"errors":
  [{"status": "error", "category": "VALIDATION_ERROR", "message", "context":
  {"objectWriteTraceId": [...], "ids": [<email>], ...}, "errors": [...]}]` and `"numErrors"`
  while the others are stored, each result echoing its `objectWriteTraceId`. Without trace ids,
  one invalid input fails the whole batch with a 400 VALIDATION_ERROR. More than 100 inputs,
  a malformed body or the same email twice in one batch: 400 for the whole batch.
  Values are stored as HubSpot stores them: strings, `true`/`false`, "" for null.
  Per-input validation: an email HubSpot would call INVALID_EMAIL (community.hubspot.com
  "contacts integration - invalid e-mails"), a property the account does not have
  (PROPERTY_DOESNT_EXIST), a number property that is not a number, an enumeration value not
  among its options (e.g. `lifecyclestage`).
- `POST /crm/v3/objects/tasks` and `/crm/v3/objects/notes`: `{"properties": {...},
  "associations": [{"to": {"id"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
  "associationTypeId": 204}]}]}` -> 201 `{"id", "properties", "createdAt", "updatedAt",
  "archived": false}` (docs/api-reference/latest/crm/activities/tasks/guide; 204 is task to
  contact, 202 note to contact). `hs_timestamp` is required; an association to a contact id the
  account does not have is a 400.
- Auth: `Authorization: Bearer <private app token>`, else 401 `{"status": "error", "message":
  "Authentication credentials not found. ...", "correlationId", "category":
  "INVALID_AUTHENTICATION"}` (the v3 shape from the HubSpot developer changelog "Improvements to
  authentication errors for V3 endpoints").
- Errors in HubSpot's shape (developers.hubspot.com/docs/api/error-handling): 429 with
  `{"status": "error", "message": "You have reached your secondly limit.", "errorType":
  "RATE_LIMIT", "correlationId", "policyName": "SECONDLY", "requestId"}`, 5xx, 400
  VALIDATION_ERROR; every answer carries the `X-HubSpot-RateLimit-*` headers.

Knobs for tests: `fail_next(count, status=..., retry_after=...)`, `outage = True` (every call
503 until cleared), `requests` (what arrived: method, path, headers, JSON), `contacts` (email ->
`StoredContact`), `tasks` / `notes`, `reset()`. The server runs in its own thread with its own
event loop, so tests, activities and workers on any loop can call it.

It also signs inbound webhooks as HubSpot does (`signed_webhook`): v3 signature, base64 of
HMAC-SHA256(client secret, method + uri + body + timestamp), headers `X-HubSpot-Signature-v3`
and `X-HubSpot-Request-Timestamp` (docs/apps/legacy-apps/authentication/validating-requests),
implemented here on its own so the connector's verifier is checked against a second reading
of the documentation rather than against itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "hubspot-client-secret-0123"
BATCH_LIMIT = 100
TASK_TO_CONTACT = 204
NOTE_TO_CONTACT = 202
SIGNATURE_V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"

# Default contact properties of a HubSpot account, plus the custom ones the README tells
# operators to create. name -> type; an enumeration lists its options.
LIFECYCLE_STAGES = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
CONTACT_PROPERTIES: dict[str, str | tuple[str, ...]] = {
    "email": "string",
    "firstname": "string",
    "lastname": "string",
    "phone": "string",
    "company": "string",
    "jobtitle": "string",
    "website": "string",
    "city": "string",
    "country": "string",
    "hubspot_owner_id": "string",
    "hs_lead_status": "string",
    "lifecyclestage": LIFECYCLE_STAGES,
    # Custom properties (Settings > Properties > Create property).
    "journeyman_score": "number",
    "journeyman_qualified": "bool",
    "journeyman_contact_id": "string",
}
TASK_PROPERTIES = frozenset(
    {
        "hs_timestamp",
        "hs_task_subject",
        "hs_task_body",
        "hubspot_owner_id",
        "hs_task_status",
        "hs_task_priority",
        "hs_task_type",
    }
)
NOTE_PROPERTIES = frozenset({"hs_timestamp", "hs_note_body", "hubspot_owner_id"})
# HubSpot's format check is RFC 2822 plus a real TLD; letters-only TLDs of two or more are
# close enough for the cases tests use ("ada@example", "not-an-email", "a@b.c").
EMAIL = re.compile(r"^[^\s@\"]+@[^\s@]+\.[A-Za-z]{2,}$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass
class StoredContact:
    id: str
    email: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass
class StoredEngagement:
    """A task or a note: its properties and the contact ids it is associated with."""

    id: str
    properties: dict[str, str]
    contact_ids: list[str]
    association_type_ids: list[int]
    created_at: datetime


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    # Lower-cased names, as HTTP/1.1 servers see them.
    headers: dict[str, str]
    json: Any


@dataclass
class Failure:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class FakeHubSpot:
    token: str = TOKEN
    client_secret: str = CLIENT_SECRET
    url: str = ""
    outage: bool = False
    contact_properties: dict[str, str | tuple[str, ...]] = field(
        default_factory=lambda: dict(CONTACT_PROPERTIES)
    )
    requests: list[ReceivedRequest] = field(default_factory=list)
    contacts: dict[str, StoredContact] = field(default_factory=dict)
    tasks: dict[str, StoredEngagement] = field(default_factory=dict)
    notes: dict[str, StoredEngagement] = field(default_factory=dict)
    _failures: list[Failure] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    # The server thread and the test touch the state: one lock around every change.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- knobs -------------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: str | None = "10",
        body: Any = None,
    ) -> None:
        """Answer the next `count` authenticated calls with `status` (HubSpot's body for it
        unless `body` is given); `retry_after` is sent on 429 and 503 when not None."""
        headers = {"Retry-After": retry_after} if retry_after and status in (429, 503) else {}
        with self._lock:
            for _ in range(count):
                self._failures.append(Failure(status, body or _default_body(status), headers))

    def reset(self) -> None:
        with self._lock:
            self.outage = False
            self.contact_properties = dict(CONTACT_PROPERTIES)
            self.requests.clear()
            self.contacts.clear()
            self.tasks.clear()
            self.notes.clear()
            self._failures.clear()

    # ---- what tests read ---------------------------------------------------------------

    def contact(self, email: str) -> StoredContact | None:
        return self.contacts.get(email.strip().lower())

    def calls(self, path_suffix: str) -> list[ReceivedRequest]:
        """The requests whose path ends with `path_suffix`, e.g. "/batch/upsert"."""
        return [request for request in self.requests if request.path.endswith(path_suffix)]

    def add_contact(self, email: str, **properties: str) -> StoredContact:
        """A contact created in HubSpot by someone else (a sales rep, a form)."""
        now = datetime.now(UTC)
        with self._lock:
            stored = StoredContact(
                id=str(next(self._ids)),
                email=email.lower(),
                properties={"email": email.lower(), **properties},
                created_at=now,
                updated_at=now,
            )
            self.contacts[stored.email] = stored
        return stored

    # ---- inbound webhooks, signed as HubSpot signs them ----------------------------------

    def signed_webhook(
        self, uri: str, events: list[dict[str, Any]], *, timestamp_ms: int, method: str = "POST"
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers HubSpot would POST to `uri` (the full URL it calls)."""
        body = json.dumps(events).encode()
        return body, self.signature_headers(method, uri, body, timestamp_ms)

    def signature_headers(
        self, method: str, uri: str, body: bytes, timestamp_ms: int
    ) -> dict[str, str]:
        source = method.encode() + uri.encode() + body + str(timestamp_ms).encode()
        digest = hmac.new(self.client_secret.encode(), source, hashlib.sha256).digest()
        return {
            "Content-Type": "application/json",
            SIGNATURE_V3_HEADER: base64.b64encode(digest).decode(),
            TIMESTAMP_HEADER: str(timestamp_ms),
        }

    # ---- the HTTP side -----------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/crm/v3/objects/contacts/batch/upsert", self._batch_upsert, methods=["POST"]
                ),
                Route("/crm/v3/objects/tasks", self._create_task, methods=["POST"]),
                Route("/crm/v3/objects/notes", self._create_note, methods=["POST"]),
            ]
        )

    async def _gate(self, request: Request) -> tuple[Any, Response | None]:
        """Log the call, then answer for outage, a bad token or an injected failure."""
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(
                ReceivedRequest(
                    method=request.method,
                    path=request.url.path,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    json=body,
                )
            )
            if self.outage:
                return body, _answer(503, _default_body(503))
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return body, _answer(401, _auth_error())
            if self._failures:
                failure = self._failures.pop(0)
                return body, _answer(failure.status, failure.body, failure.headers)
        if not isinstance(body, dict):
            return body, _answer(400, _error("Invalid input JSON on line 1", "VALIDATION_ERROR"))
        return body, None

    async def _batch_upsert(self, request: Request) -> Response:
        body, refused = await self._gate(request)
        if refused is not None:
            return refused
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(one, dict) for one in inputs):
            return _answer(400, _error("Invalid input JSON: inputs", "VALIDATION_ERROR"))
        if len(inputs) > BATCH_LIMIT:
            return _answer(
                400,
                _error(
                    f"Batch input size {len(inputs)} exceeds limit of {BATCH_LIMIT}",
                    "VALIDATION_ERROR",
                    context={"limit": [str(BATCH_LIMIT)]},
                ),
            )
        emails = [str(one.get("id", "")).strip().lower() for one in inputs]
        duplicates = sorted({email for email in emails if emails.count(email) > 1})
        if duplicates:
            return _answer(
                400,
                _error(
                    f"Duplicate IDs found in batch input: {duplicates}",
                    "VALIDATION_ERROR",
                    context={"ids": duplicates},
                ),
            )
        traces = [one.get("objectWriteTraceId") for one in inputs]
        # Multi-status is opt-in: only with a unique objectWriteTraceId on every input does
        # HubSpot take the valid inputs and list the refused ones; otherwise one invalid
        # input fails the whole batch.
        multi_status = all(isinstance(trace, str) and trace for trace in traces) and len(
            set(traces)
        ) == len(traces)
        problems: list[dict[str, Any] | None] = []
        for one, email, trace in zip(inputs, emails, traces, strict=True):
            if one.get("idProperty") != "email":
                problems.append(
                    _input_error(
                        email,
                        "idProperty must be email",
                        "INVALID_ID_PROPERTY",
                        "idProperty",
                        trace,
                    )
                )
            else:
                problems.append(self._check_contact(email, one.get("properties") or {}, trace))
        first_problem = next((problem for problem in problems if problem is not None), None)
        if first_problem is not None and not multi_status:
            whole = _error(first_problem["message"], "VALIDATION_ERROR")
            whole["errors"] = first_problem["errors"]
            return _answer(400, whole)
        started = _iso(datetime.now(UTC))
        results: list[dict[str, Any]] = []
        errors = [problem for problem in problems if problem is not None]
        with self._lock:
            for one, email, trace, problem in zip(inputs, emails, traces, problems, strict=True):
                if problem is None:
                    result = self._upsert(email, one.get("properties") or {})
                    if trace:
                        result["objectWriteTraceId"] = trace
                    results.append(result)
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _iso(datetime.now(UTC)),
        }
        if errors:
            answer["errors"] = errors
            answer["numErrors"] = len(errors)
        return _answer(207 if errors else 200, answer)

    def _check_contact(
        self, email: str, properties: dict[str, Any], trace: Any
    ) -> dict[str, Any] | None:
        if not EMAIL.match(email):
            message = (
                'Property values were not valid: [{"isValid":false,"message":"Email address '
                f'{email} is invalid","error":"INVALID_EMAIL","name":"email"}}]'
            )
            return _input_error(email, message, "INVALID_EMAIL", "email", trace)
        for name, value in properties.items():
            kind = self.contact_properties.get(name)
            if kind is None:
                message = f'Property "{name}" does not exist'
                return _input_error(email, message, "PROPERTY_DOESNT_EXIST", name, trace)
            text = _stored(value)
            if text == "":
                continue
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if kind == "number" and not is_number and not NUMBER.match(text):
                message = f"{text} was not a valid number for property {name}"
                return _input_error(email, message, "INVALID_INTEGER", name, trace)
            if kind == "bool" and text not in ("true", "false"):
                message = f"{text} was not a valid boolean for property {name}"
                return _input_error(email, message, "INVALID_BOOLEAN", name, trace)
            if isinstance(kind, tuple) and text not in kind:
                message = f"{text} was not one of the allowed options: {list(kind)}"
                return _input_error(email, message, "INVALID_OPTION", name, trace)
        return None

    def _upsert(self, email: str, properties: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        stored = self.contacts.get(email)
        new = stored is None
        if stored is None:
            stored = StoredContact(
                id=str(next(self._ids)),
                email=email,
                properties={"email": email},
                created_at=now,
                updated_at=now,
            )
            self.contacts[email] = stored
        stored.properties.update({name: _stored(value) for name, value in properties.items()})
        stored.properties["email"] = email
        stored.updated_at = now
        return {
            "id": stored.id,
            "properties": {**stored.properties, "hs_object_id": stored.id},
            "createdAt": _iso(stored.created_at),
            "updatedAt": _iso(stored.updated_at),
            "archived": False,
            "new": new,
        }

    async def _create_task(self, request: Request) -> Response:
        return await self._create_engagement(
            request, self.tasks, TASK_PROPERTIES, TASK_TO_CONTACT, "TASK"
        )

    async def _create_note(self, request: Request) -> Response:
        return await self._create_engagement(
            request, self.notes, NOTE_PROPERTIES, NOTE_TO_CONTACT, "NOTE"
        )

    async def _create_engagement(
        self,
        request: Request,
        store: dict[str, StoredEngagement],
        allowed: frozenset[str],
        association_type: int,
        kind: str,
    ) -> Response:
        body, refused = await self._gate(request)
        if refused is not None:
            return refused
        properties = body.get("properties")
        if not isinstance(properties, dict):
            return _answer(400, _error("Invalid input JSON: properties", "VALIDATION_ERROR"))
        unknown = sorted(set(properties) - allowed)
        if unknown:
            return _answer(
                400,
                _error(
                    f'Property values were not valid: Property "{unknown[0]}" does not exist',
                    "VALIDATION_ERROR",
                    context={"propertyName": unknown},
                ),
            )
        if not properties.get("hs_timestamp"):
            return _answer(
                400, _error("Missing required property: hs_timestamp", "VALIDATION_ERROR")
            )
        contact_ids: list[str] = []
        type_ids: list[int] = []
        with self._lock:
            known = {stored.id for stored in self.contacts.values()}
            for association in body.get("associations") or []:
                target = str((association.get("to") or {}).get("id", ""))
                types = association.get("types") or []
                valid = any(
                    one.get("associationCategory") == "HUBSPOT_DEFINED"
                    and one.get("associationTypeId") == association_type
                    for one in types
                )
                if not valid:
                    message = f"Invalid association type for {kind} to CONTACT: {types}"
                    return _answer(400, _error(message, "VALIDATION_ERROR"))
                if target not in known:
                    message = f"One or more associations are invalid: CONTACT {target} not found"
                    return _answer(400, _error(message, "VALIDATION_ERROR"))
                contact_ids.append(target)
                type_ids.append(association_type)
            now = datetime.now(UTC)
            stored = StoredEngagement(
                id=str(next(self._ids)),
                properties={name: _stored(value) for name, value in properties.items()},
                contact_ids=contact_ids,
                association_type_ids=type_ids,
                created_at=now,
            )
            store[stored.id] = stored
        return _answer(
            201,
            {
                "id": stored.id,
                "properties": {**stored.properties, "hs_object_id": stored.id},
                "createdAt": _iso(now),
                "updatedAt": _iso(now),
                "archived": False,
            },
        )


def _stored(value: Any) -> str:
    """A property value as HubSpot stores and returns it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(message: str, category: str, *, context: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if context:
        body["context"] = context
    return body


def _input_error(
    email: str, message: str, code: str, property_name: str, trace: Any
) -> dict[str, Any]:
    """One refused input of a batch, as the multi-status `errors` list holds it."""
    context: dict[str, list[str]] = {"ids": [email], "propertyName": [property_name]}
    if isinstance(trace, str) and trace:
        context["objectWriteTraceId"] = [trace]
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "subCategory": code,
        "message": message,
        "context": context,
        "errors": [
            {"message": message, "code": code, "in": property_name, "context": {"ids": [email]}}
        ],
        "links": {},
    }


def _auth_error() -> dict[str, Any]:
    body = _error(
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
        "you can find more details at https://developers.hubspot.com/docs/methods/auth/"
        "oauth-overview",
        "INVALID_AUTHENTICATION",
    )
    body["links"] = {"oauth": "https://developers.hubspot.com/docs/methods/auth/oauth-overview"}
    return body


def _default_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": "SECONDLY",
            "requestId": str(uuid.uuid4()),
        }
    if status == 400:
        return _error("One or more validation errors occurred", "VALIDATION_ERROR")
    if status == 403:
        return _error(
            "This app hasn't been granted all required scopes to make this call.",
            "MISSING_SCOPES",
            context={"requiredGranularScopes": ["crm.objects.contacts.write"]},
        )
    return {
        "status": "error",
        "message": "internal error",
        "correlationId": str(uuid.uuid4()),
    }


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    rate = {
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "0" if status == 429 else "189",
        "X-HubSpot-RateLimit-Daily": "1000000",
        "X-HubSpot-RateLimit-Daily-Remaining": "999999",
    }
    return JSONResponse(body, status_code=status, headers={**rate, **(headers or {})})


@contextmanager
def serving_fake_hubspot(fake: FakeHubSpot | None = None) -> Iterator[FakeHubSpot]:
    """Serve a `FakeHubSpot` on 127.0.0.1 (a free port) in a thread until the block ends."""
    fake = fake or FakeHubSpot()
    # Bound and listening before the thread starts: a client may connect at once (the kernel
    # queues it), so nothing has to wait for the server to be ready.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    fake.url = f"http://{host}:{port}"
    config = uvicorn.Config(fake.app(), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@asynccontextmanager
async def running_fake_hubspot(fake: FakeHubSpot | None = None) -> AsyncIterator[FakeHubSpot]:
    """`serving_fake_hubspot` for async code: stopping waits in a thread, not on the loop."""
    context = serving_fake_hubspot(fake)
    started = context.__enter__()
    try:
        yield started
    finally:
        await asyncio.to_thread(context.__exit__, None, None, None)
