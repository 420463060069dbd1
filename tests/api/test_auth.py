"""Every /v1 route wants a configured bearer key (the provider webhook its provider's own
credentials); the report and metrics check the key themselves; only health, unsubscribe links
and tracking links are public."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.api.helpers import API_KEY

PATH_VALUES = {"contact_id": "c-auth", "name": "welcome_series", "id": "bulk-auth"}
WRONG_HEADERS = [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"Bearer {API_KEY.upper()}"},
    {"Authorization": f"Bearer {API_KEY}x"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": API_KEY},
]


# Under /v1 but outside the API key: the caller (a CRM) signs its requests instead; checked
# in the test below and in tests/crm_sync/test_inbound.py.
SIGNED_ROUTES = {"/v1/webhooks/crm"}


def v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, concrete path) under /v1, read from the app so none can be missed."""
    routes: list[tuple[str, str]] = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/v1"):
            concrete = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
            routes.extend((method.upper(), concrete) for method in operations)
    return routes


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    ) as client:
        yield client


def test_the_v1_surface_is_what_the_issue_lists(app: FastAPI) -> None:
    assert set(v1_routes(app)) == {
        ("PUT", "/v1/contacts/c-auth"),
        ("GET", "/v1/contacts/c-auth"),
        ("DELETE", "/v1/contacts/c-auth"),
        ("GET", "/v1/contacts/c-auth/journeys"),
        ("GET", "/v1/contacts/c-auth/messages"),
        ("GET", "/v1/contacts/c-auth/score"),
        ("PUT", "/v1/contacts/c-auth/subscriptions"),
        ("POST", "/v1/contacts/c-auth/journeys/welcome_series/exit"),
        ("POST", "/v1/events"),
        ("POST", "/v1/events/batch"),
        ("GET", "/v1/journeys"),
        ("POST", "/v1/journeys/welcome_series/enrollments"),
        ("POST", "/v1/journeys/welcome_series/bulk-enrollments"),
        ("GET", "/v1/journeys/welcome_series/bulk-enrollments/bulk-auth"),
        ("GET", "/v1/journeys/welcome_series/stats"),
        ("POST", "/v1/journeys/welcome_series/simulate"),
        ("GET", "/v1/segments"),
        ("GET", "/v1/segments/welcome_series"),
        ("POST", "/v1/webhooks/email"),
        ("POST", "/v1/webhooks/crm"),
    }


def test_the_routes_outside_v1_are_exactly_these(app: FastAPI) -> None:
    # The unsubscribe links are public on purpose: the people who click them have no API key,
    # and the signed token in the path is their authorisation (tests/api/test_unsubscribe.py
    # proves a forged or foreign one is refused).
    public = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if not path.startswith("/v1")
        for method in operations
    }
    assert public == {
        ("GET", "/healthz"),
        ("GET", "/u/{token}"),
        ("POST", "/u/{token}"),
        # Opened by mail clients; the signed token is the authorisation (tests/tracking).
        ("GET", "/t/o/{token}"),
        ("GET", "/t/c/{token}"),
        # These two check the API key themselves: see the test below.
        ("GET", "/metrics"),
        ("GET", "/journeys/{name}"),
    }


@pytest.mark.parametrize("path", ["/metrics", "/journeys/welcome_series"])
@pytest.mark.parametrize("headers", WRONG_HEADERS, ids=lambda h: h.get("Authorization", "none"))
async def test_report_and_metrics_refuse_a_missing_or_wrong_key(
    anonymous: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    response = await anonymous.get(path, headers=headers)
    assert response.status_code == 401, (path, headers, response.text)


@pytest.mark.parametrize("headers", WRONG_HEADERS, ids=lambda h: h.get("Authorization", "none"))
async def test_every_v1_route_refuses_a_missing_or_wrong_key(
    app: FastAPI, anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in v1_routes(app):
        if path in SIGNED_ROUTES:
            continue
        # An invalid body too: the key is checked before anything else is looked at.
        response = await anonymous.request(method, path, headers=headers, content=b"{not json")
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


@pytest.mark.parametrize("headers", WRONG_HEADERS, ids=lambda h: h.get("Authorization", "none"))
async def test_the_crm_webhook_wants_a_signature_not_a_key(
    anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for with_key in (headers, {"Authorization": f"Bearer {API_KEY}"}):
        response = await anonymous.post("/v1/webhooks/crm", headers=with_key, content=b"{not json")
        assert response.status_code == 401, response.text
        assert "signature" in response.json()["detail"]


async def test_any_configured_key_is_accepted(anonymous: httpx.AsyncClient) -> None:
    for key in (API_KEY, "other"):
        response = await anonymous.get("/v1/journeys", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200


async def test_unsubscribe_links_need_no_key_but_a_valid_token(
    anonymous: httpx.AsyncClient,
) -> None:
    for method in ("GET", "POST"):
        response = await anonymous.request(method, "/u/not-a-token")
        assert response.status_code == 400, (method, response.text)
        assert "not valid" in response.text


async def test_health_and_docs_need_no_key(anonymous: httpx.AsyncClient) -> None:
    health = await anonymous.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await anonymous.get("/openapi.json")).json()
    assert "/v1/events" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
