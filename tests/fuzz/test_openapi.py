"""Every operation of the OpenAPI schema, fuzzed with the API key: no 5xx, and every answer
is one the schema documents (status code, content type, body)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import APIOperation

from api import create_app
from journeyman.settings import Settings
from tests.api.helpers import API_KEY
from tests.fuzz.conftest import FUZZED

# What "schema-valid data accepted" may answer (Schemathesis' default list, minus 5xx).
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 429]
# Routes that check what JSON Schema cannot say, so a schema-valid request may be refused:
BEYOND_THE_SCHEMA: dict[str, list[int]] = {
    # a token's signature and expiry
    "/u/{token}": [400],
    "/t/o/{token}": [400],
    "/t/c/{token}": [400],
    # IANA time zones
    "/v1/contacts/{contact_id}": [422],
    # a cursor is opaque and signed
    "/v1/contacts/{contact_id}/messages": [422],
    # occurred_at within [2000, now + 1 day]
    "/v1/events": [422],
    "/v1/events/batch": [422],
    # a bounce needs its kind (hard or soft), per event type
    "/v1/webhooks/email": [422],
    # a key exactly for keyed journeys
    "/v1/journeys/{name}/enrollments": [422],
    # IANA time zones, consent channels, event offsets within the horizon
    "/v1/journeys/{name}/simulate": [422],
}

# The budget: deterministic (the same cases every run, so CI does not flake on a new one),
# few examples per operation, no shrinking (a failure prints its case anyway).
CONFIG = {
    "seed": 20261123,
    "headers": {"Authorization": f"Bearer {API_KEY}"},
    "generation": {
        "max-examples": 10,
        "deterministic": True,
        "database": "none",
        "no-shrink": True,
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "operations": [
        # Each valid simulation boots a time-skipping server (seconds): a few suffice.
        {"include-path": "/v1/journeys/{name}/simulate", "generation": {"max-examples": 2}},
        # A CSV body is text: a "wrongly typed" one (an object) is, once sent, valid CSV.
        {
            "include-path": "/v1/journeys/{name}/bulk-enrollments",
            "include-method": "POST",
            "checks": {"negative_data_rejection": {"enabled": False}},
        },
        *(
            {
                "include-path": path,
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *also]}},
            }
            for path, also in BEYOND_THE_SCHEMA.items()
        ),
    ],
}

# Status codes each operation answered, for the check after the fuzzing.
ANSWERED: defaultdict[str, set[int]] = defaultdict(set)
MAIN_ROUTES = [
    "PUT /v1/contacts/{contact_id}",
    "GET /v1/contacts/{contact_id}",
    "PUT /v1/contacts/{contact_id}/subscriptions",
    "GET /v1/contacts/{contact_id}/messages",
    "GET /v1/contacts/{contact_id}/journeys",
    "GET /v1/contacts/{contact_id}/score",
    "POST /v1/events",
    "POST /v1/events/batch",
    "GET /v1/journeys",
    "POST /v1/journeys/{name}/enrollments",
    "POST /v1/journeys/{name}/bulk-enrollments",
    "POST /v1/journeys/{name}/simulate",
    "GET /v1/journeys/{name}/stats",
    "GET /journeys/{name}",
    "GET /v1/segments/{name}",
    "POST /v1/webhooks/email",
]

# The document the app serves at /openapi.json (it does not depend on the settings).
schema = schemathesis.openapi.from_dict(
    create_app(Settings()).openapi(), config=SchemathesisConfig.from_dict(CONFIG)
)
schema.app = FUZZED


@schema.parametrize()
# `seeded` is meant to run once per operation, not per example.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_schema(
    case: Case[APIOperation[Any, Any, Any, Any]], fuzz_app: FastAPI, seeded: str
) -> None:
    response = case.call_and_validate()
    ANSWERED[case.operation.label].add(response.status_code)


def test_the_main_routes_were_fuzzed_past_validation() -> None:
    """Mostly 404s and 422s would prove little: each main route got valid calls too (from
    the schema's examples, which name the seeded contact and real journeys)."""
    fuzzed = [label for label in MAIN_ROUTES if label in ANSWERED]
    if not fuzzed:
        pytest.skip("runs after test_api_conforms_to_its_schema, in the same session")
    missed = {label: sorted(ANSWERED[label]) for label in fuzzed if not _succeeded(label)}
    assert not missed


def _succeeded(label: str) -> bool:
    return any(200 <= code < 300 for code in ANSWERED[label])
