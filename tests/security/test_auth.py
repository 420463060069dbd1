"""Who may call what: every route of the app has a decision in `ROUTES`, and each answers
no key, a wrong key, an admin key and an ingest key as its decision says.

The routes are read from the app itself (`app_routes`), so a route added without a decision
fails `test_every_route_has_a_decision`; and because ingest keys are default-deny
(`api.deps.INGEST_ENDPOINTS`), a new /v1 route is admin-only until someone allows it.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError

from api import create_app
from api.deps import INGEST_ENDPOINTS, Scope, key_scope, require_api_key
from journeyman.settings import DEV_API_KEY, Settings
from tests.security.conftest import ADMIN_KEY, INGEST_KEY, OTHER_ADMIN_KEY, bearer

PUBLIC = "public"  # no key: the signed token in the path, or nothing at all, is enough
SIGNED = "signed"  # the provider's signature or secret; our API keys open nothing
ADMIN = "admin"  # JOURNEYMAN_API_KEYS only
INGEST = "ingest"  # JOURNEYMAN_API_KEYS or JOURNEYMAN_INGEST_API_KEYS

ROUTES: dict[tuple[str, str], str] = {
    # The API's own documentation: the schema names routes and fields, never data or keys.
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    # Links in messages: the people who open them have no key (test_tokens.py).
    ("GET", "/u/{token}"): PUBLIC,
    ("POST", "/u/{token}"): PUBLIC,
    ("GET", "/t/o/{token}"): PUBLIC,
    ("GET", "/t/c/{token}"): PUBLIC,
    # Providers sign their calls (test_tokens.py, tests/feedback, tests/crm_sync).
    ("POST", "/v1/webhooks/email"): SIGNED,
    ("POST", "/v1/webhooks/crm"): SIGNED,
    # Outside /v1 but checking the key themselves (Basic for browsers, bearer for Prometheus).
    ("GET", "/metrics"): ADMIN,
    ("GET", "/journeys/{name}"): ADMIN,
    # What a backend does: feed events and contacts in, start and stop a contact's journey.
    ("POST", "/v1/events"): INGEST,
    ("POST", "/v1/events/batch"): INGEST,
    ("PUT", "/v1/contacts/{contact_id}"): INGEST,
    ("PUT", "/v1/contacts/{contact_id}/subscriptions"): INGEST,
    ("POST", "/v1/journeys/{name}/enrollments"): INGEST,
    ("POST", "/v1/contacts/{contact_id}/journeys/{name}/exit"): INGEST,
    # Reads of people's data, bulk operations and reports: operators.
    ("GET", "/v1/contacts/{contact_id}"): ADMIN,
    ("DELETE", "/v1/contacts/{contact_id}"): ADMIN,
    ("GET", "/v1/contacts/{contact_id}/messages"): ADMIN,
    ("GET", "/v1/contacts/{contact_id}/journeys"): ADMIN,
    ("GET", "/v1/contacts/{contact_id}/score"): ADMIN,
    ("GET", "/v1/journeys"): ADMIN,
    ("POST", "/v1/journeys/{name}/bulk-enrollments"): ADMIN,
    ("GET", "/v1/journeys/{name}/bulk-enrollments/{id}"): ADMIN,
    ("POST", "/v1/journeys/{name}/simulate"): ADMIN,
    ("GET", "/v1/journeys/{name}/stats"): ADMIN,
    ("GET", "/v1/segments"): ADMIN,
    ("GET", "/v1/segments/{name}"): ADMIN,
}
# Routes that may or may not exist yet (being added in parallel): decided, not required.
OPTIONAL = {("DELETE", "/v1/contacts/{contact_id}")}

PATH_VALUES = {
    "contact_id": "c-sec-auth",
    "name": "welcome_series",
    "id": "bulk-sec-auth",
    "token": "not-a-token",
}
WRONG_HEADERS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"},
    {"Authorization": f"Bearer {ADMIN_KEY}x"},
    {"Authorization": f"Bearer {ADMIN_KEY.upper()}"},
    {"Authorization": f"Bearer {INGEST_KEY[:-1]}"},
    {"Authorization": f"Bearer {DEV_API_KEY}"},
    {"Authorization": "Bearer "},
    {"Authorization": ADMIN_KEY},
    {"Authorization": f"Token {ADMIN_KEY}"},
]
# Anything a JSON body parser refuses: with a key that passes, the answer is a 422 and no
# handler runs, so the test changes nothing; without one, the key is looked at first.
BODY = b"{not json"


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path template) the app answers, read from its routers (nested ones
    too), including the routes hidden from the OpenAPI schema."""
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None) or {"*"}  # a mount: undecidable, so fails
        for method in methods:
            if method != "HEAD":
                yield method, str(path)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{password}".encode()).decode()}


def _app() -> FastAPI:
    return create_app(Settings(api_keys=[ADMIN_KEY], ingest_api_keys=[INGEST_KEY]))


def test_every_route_has_a_decision() -> None:
    found = set(app_routes(_app()))
    undecided = found - set(ROUTES)
    assert not undecided, f"decide who may call these, in ROUTES: {sorted(undecided)}"
    assert set(ROUTES) - OPTIONAL <= found, "ROUTES names routes the app no longer has"


def test_a_new_route_without_a_decision_is_caught_and_admin_only() -> None:
    app = _app()
    later = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

    @later.delete("/contacts/{contact_id}/everything")
    async def forget(contact_id: str) -> dict[str, str]:
        return {"forgotten": contact_id}

    app.include_router(later)
    assert set(app_routes(app)) - set(ROUTES) == {
        ("DELETE", "/v1/contacts/{contact_id}/everything")
    }


async def test_a_route_added_later_refuses_ingest_keys_by_default(app: FastAPI) -> None:
    later = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

    @later.delete("/contacts/{contact_id}/probe")
    async def probe(contact_id: str) -> dict[str, str]:
        return {"deleted": contact_id}

    app.include_router(later)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    ) as client:
        refused = await client.delete("/v1/contacts/c-1/probe", headers=bearer(INGEST_KEY))
        allowed = await client.delete("/v1/contacts/c-1/probe", headers=bearer(ADMIN_KEY))
    assert refused.status_code == 403
    assert "ingest key" in refused.json()["detail"]
    assert allowed.status_code == 200


def test_ingest_endpoints_are_exactly_the_ingest_routes() -> None:
    """`INGEST_ENDPOINTS` names functions; these are the (method, path) they serve."""
    served: set[tuple[str, str]] = set()
    for route in iter_route_contexts(_app().routes):
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None and f"{endpoint.__module__}:{endpoint.__qualname__}" in (
            INGEST_ENDPOINTS
        ):
            served |= {(method, str(route.path)) for method in getattr(route, "methods", ())}
    assert served == {route for route, decision in ROUTES.items() if decision == INGEST}


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=lambda v: str(v))
async def test_each_route_answers_each_kind_of_caller(
    app: FastAPI, anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    if (method, path) not in set(app_routes(app)):
        pytest.skip(f"{method} {path} is not in this app yet")
    decision = ROUTES[(method, path)]
    url = concrete(path)

    async def call(headers: dict[str, str]) -> httpx.Response:
        return await anonymous.request(method, url, headers=headers, content=BODY)

    for headers in WRONG_HEADERS:
        answer = await call(headers)
        if decision == PUBLIC:
            assert answer.status_code not in (401, 403), (headers, answer.text)
        else:
            assert answer.status_code == 401, (headers, answer.text)
            assert "detail" in answer.json()

    admin, ingest = await call(bearer(ADMIN_KEY)), await call(bearer(INGEST_KEY))
    if decision == SIGNED:
        # Our keys are no provider signature: an admin key opens nothing here.
        assert (admin.status_code, ingest.status_code) == (401, 401), admin.text
        return
    assert admin.status_code not in (401, 403), admin.text
    assert (await call(bearer(OTHER_ADMIN_KEY))).status_code not in (401, 403)
    if decision == ADMIN:
        assert ingest.status_code == 403, ingest.text
        assert ingest.headers["content-type"] == "application/json"
        assert "ingest key" in ingest.json()["detail"]
    else:
        assert ingest.status_code not in (401, 403), ingest.text


async def test_the_report_takes_the_admin_key_as_basic_password(
    anonymous: httpx.AsyncClient,
) -> None:
    url = "/journeys/welcome_series"
    assert (await anonymous.get(url, headers=basic(ADMIN_KEY))).status_code == 200
    assert (await anonymous.get(url, headers=basic(INGEST_KEY))).status_code == 403
    refused = await anonymous.get(url, headers=basic("nope"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")


async def test_an_ingest_key_feeds_a_contact_in_but_cannot_read_it_back(
    anonymous: httpx.AsyncClient,
) -> None:
    url = "/v1/contacts/c-sec-ingest"
    written = await anonymous.put(
        url, headers=bearer(INGEST_KEY), json={"email": "ingest@example.com"}
    )
    assert written.status_code in (200, 201), written.text
    event = {"id": "e-sec-ingest", "contact_id": "c-sec-ingest", "name": "page_viewed"}
    sent = await anonymous.post("/v1/events", headers=bearer(INGEST_KEY), json=event)
    assert sent.status_code < 300, sent.text

    assert (await anonymous.get(url, headers=bearer(INGEST_KEY))).status_code == 403
    read = await anonymous.get(url, headers=bearer(ADMIN_KEY))
    assert read.status_code == 200
    assert read.json()["email"] == "ingest@example.com"


COMPARE_DIGEST = hmac.compare_digest


class CountingCompare:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, a: bytes, b: bytes) -> bool:
        self.calls += 1
        return COMPARE_DIGEST(a, b)


@pytest.mark.parametrize(
    "given",
    [b"admin-1", b"admin-3", b"ingest-1", b"ingest-2", b"nobody", b"", b"admin-1x"],
)
def test_every_key_is_compared_in_constant_time_whichever_matches(
    monkeypatch: pytest.MonkeyPatch, given: bytes
) -> None:
    """No early exit: the time taken does not say how many keys came before the match."""
    settings = Settings(
        api_keys=["admin-1", "admin-2", "admin-3"], ingest_api_keys=["ingest-1", "ingest-2"]
    )
    counting = CountingCompare()
    monkeypatch.setattr(hmac, "compare_digest", counting)

    scope = key_scope(settings, given)

    assert counting.calls == 5
    expected = {b"admin-1": Scope.ADMIN, b"admin-3": Scope.ADMIN}
    expected |= {b"ingest-1": Scope.INGEST, b"ingest-2": Scope.INGEST}
    assert scope == expected.get(given)


def test_ingest_keys_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_INGEST_API_KEYS", " backend-1, backend-2 ,")
    assert Settings().ingest_api_keys == ["backend-1", "backend-2"]
    monkeypatch.delenv("JOURNEYMAN_INGEST_API_KEYS")
    assert Settings().ingest_api_keys == []  # none unless configured


def test_production_refuses_the_dev_key_as_an_ingest_key() -> None:
    real: dict[str, Any] = {"env": "production", "secret_key": "s" * 40, "api_keys": ["k" * 32]}
    Settings(**real, ingest_api_keys=["i" * 32])
    with pytest.raises(ValidationError, match="JOURNEYMAN_INGEST_API_KEYS"):
        Settings(**real, ingest_api_keys=[DEV_API_KEY])


def test_a_key_cannot_be_both_admin_and_ingest() -> None:
    with pytest.raises(ValidationError, match="both"):
        Settings(api_keys=["shared", "a"], ingest_api_keys=["shared"])
