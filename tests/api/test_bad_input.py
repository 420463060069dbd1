"""Bad input gets a clear 4xx JSON answer, and nothing of it is stored.

Against the real app (database, Temporal dev server); no worker is needed, since nothing
here may start anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, func, select

from api.routers.bulk import MAX_BODY_BYTES as BULK_UPLOAD_BYTES
from api.schemas.common import MAX_JSON_BYTES, MAX_JSON_DEPTH
from persistence import Contact, Database, Enrollment, EventRecord
from tests.api.helpers import API_KEY, event

MiB = 1024 * 1024


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://journeyman.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client


async def stored_events(database: Database, contact_id: str) -> int:
    async with database.session() as session:
        query = select(func.count()).where(col(EventRecord.contact_id) == contact_id)
        return (await session.exec(query)).one()


async def stored_contact(database: Database, contact_id: str) -> Contact | None:
    async with database.session() as session:
        return await session.get(Contact, contact_id)


async def nothing_stored(database: Database, contact_id: str) -> bool:
    async with database.session() as session:
        enrollments = (
            await session.exec(select(func.count()).where(col(Enrollment.contact_id) == contact_id))
        ).one()
    return (
        await stored_events(database, contact_id) == 0
        and await stored_contact(database, contact_id) is None
        and enrollments == 0
    )


def problems(response: httpx.Response) -> list[dict[str, Any]]:
    """The 422's problems, each `{"loc", "msg", "type"}`."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    return detail


def located(response: httpx.Response) -> dict[tuple[str | int, ...], str]:
    return {tuple(problem["loc"]): problem["msg"] for problem in problems(response)}


# ----- sizes -----------------------------------------------------------------------------


async def test_a_body_declared_over_the_limit_is_refused_unread(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    body = json.dumps(event(contact_id, "signed_up", blob="x" * MiB)).encode()
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            read.append(start)
            yield body[start : start + 64 * 1024]

    response = await client.post(
        "/v1/events",
        content=chunks(),
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
    )

    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body over 1048576 bytes")
    assert read == []  # answered from the Content-Length alone
    assert await nothing_stored(database, contact_id)


async def test_a_chunked_body_is_cut_off_once_over_the_limit(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    # No Content-Length: the body streams in chunks, and is refused as it crosses 1 MiB
    # rather than read to its end (the generator is not run dry).
    chunk = b" " * (64 * 1024)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(event(contact_id, "signed_up"))[:-1].encode() + b","
        for index in range(200):  # 12.5 MiB of white space, if it were all read
            sent.append(index)
            yield chunk
        yield b"}"

    response = await client.post(
        "/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert "content-length" not in response.request.headers
    assert len(sent) <= 20
    assert await nothing_stored(database, contact_id)


async def test_a_body_just_under_the_limit_is_read(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    # Padding (white space) keeps the body itself near the limit while the event is small.
    body = json.dumps(event(contact_id, "x_seen")) + " " * (MiB - 1000)

    response = await client.post(
        "/v1/events", content=body.encode(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text
    assert await stored_events(database, contact_id) == 1


async def test_bulk_uploads_have_their_larger_limit(
    client: httpx.AsyncClient, database: Database
) -> None:
    # 2 MiB of CSV passes the general limit's check (the route then refuses ids it does not
    # know); over 8 MiB is refused unread.
    ids = "".join(f"fuzz-{n:09d}\n" for n in range(2 * MiB // 15))
    within = await client.post(
        "/v1/journeys/welcome_series/bulk-enrollments",
        content=ids.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert within.status_code != 413, within.text

    over = await client.post(
        "/v1/journeys/welcome_series/bulk-enrollments",
        content=b"c\n" * (BULK_UPLOAD_BYTES // 2 + 1),
        headers={"Content-Type": "text/csv"},
    )
    assert over.status_code == 413
    assert f"over {BULK_UPLOAD_BYTES} bytes" in over.json()["detail"]


async def test_a_batch_over_1000_events_is_refused_whole(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    batch = {"events": [event(contact_id, "x_seen") for _ in range(1001)]}

    response = await client.post("/v1/events/batch", json=batch)

    assert located(response)[("body", "events")].startswith("List should have at most 1000")
    assert await nothing_stored(database, contact_id)


async def test_properties_over_64_kib_are_refused(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    response = await client.post(
        "/v1/events", json=event(contact_id, "x_seen", text="x" * MAX_JSON_BYTES)
    )

    assert f"at most {MAX_JSON_BYTES} bytes" in located(response)[("body", "properties")]
    assert await nothing_stored(database, contact_id)


def nested(depth: int) -> dict[str, Any]:
    """An object nesting `depth` levels (itself the first)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_properties_nest_at_most_10_levels(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    too_deep = event(contact_id, "x_seen", wrapper=nested(MAX_JSON_DEPTH))  # 11 levels
    response = await client.post("/v1/events", json=too_deep)
    assert "at most 10 levels deep, got 11" in located(response)[("body", "properties")]
    assert await nothing_stored(database, contact_id)

    deep_enough = await client.post(
        "/v1/events", json={**event(contact_id, "x_seen"), "properties": nested(MAX_JSON_DEPTH)}
    )
    assert deep_enough.status_code == 202, deep_enough.text


async def test_contact_attributes_nest_at_most_10_levels(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    response = await client.put(
        f"/v1/contacts/{contact_id}", json={"attributes": nested(MAX_JSON_DEPTH + 1)}
    )

    assert "levels deep" in located(response)[("body", "attributes")]
    assert await nothing_stored(database, contact_id)


async def test_json_nested_past_the_parser_is_a_422_not_a_crash(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    # Deep enough to exhaust the JSON parser's recursion: still a clear 422.
    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    body = f'{{"contact_id": "{contact_id}", "name": "x", "properties": {deep}}}'

    response = await client.post(
        "/v1/events", content=body.encode(), headers={"Content-Type": "application/json"}
    )

    assert problems(response) == [
        {
            "type": "json_invalid",
            "loc": ["body"],
            "msg": "JSON decode error: the body nests JSON too deeply",
        }
    ]
    assert await nothing_stored(database, contact_id)


# ----- strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contact_id", "c" * 201),
        ("id", "e" * 201),
        ("name", "n" * 201),
        ("contact_id", "has space"),
        ("contact_id", "has:colon"),
        ("contact_id", "nbsp\u00a0inside"),
        ("id", "nul\x00inside"),
    ],
)
async def test_event_identifiers_are_bounded_and_printable(
    client: httpx.AsyncClient, database: Database, contact_id: str, field: str, value: str
) -> None:
    body = {**event(contact_id, "x_seen"), field: value}

    response = await client.post("/v1/events", json=body)

    assert ("body", field) in located(response)
    assert await nothing_stored(database, contact_id)
    if field == "contact_id":
        assert await stored_contact(database, value) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "a" * 310 + "@example.com"),
        ("email", "not an address"),
        ("phone", "+1" + "5" * 40),
        ("locale", "fr-" + "x" * 40),
        ("timezone", "Europe/" + "x" * 80),
    ],
)
async def test_contact_fields_are_bounded(
    client: httpx.AsyncClient, database: Database, contact_id: str, field: str, value: str
) -> None:
    response = await client.put(f"/v1/contacts/{contact_id}", json={field: value})

    assert ("body", field) in located(response)
    assert await nothing_stored(database, contact_id)


async def test_path_identifiers_are_bounded(client: httpx.AsyncClient, database: Database) -> None:
    long_contact = "c" * 201
    response = await client.put(f"/v1/contacts/{long_contact}", json={})
    assert ("path", "contact_id") in located(response)
    assert await stored_contact(database, long_contact) is None

    long_journey = "j" * 101
    response = await client.get(f"/v1/journeys/{long_journey}/stats")
    assert ("path", "name") in located(response)


# ----- encodings and numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"contact_id": "%s", "name": "x_seen", "properties": {"t": "caf\xe9"}}',  # Latin-1
        b"\xff\xfe{\x00",
    ],
    ids=["latin-1", "utf-16-bom"],
)
async def test_a_body_that_is_not_utf8_is_a_422(
    client: httpx.AsyncClient, database: Database, contact_id: str, raw: bytes
) -> None:
    body = raw.replace(b"%s", contact_id.encode())

    response = await client.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"}
    )

    (problem,) = problems(response)
    assert problem["type"] == "json_invalid"
    assert "not UTF-8" in problem["msg"] or "decode" in problem["msg"].lower()
    assert await nothing_stored(database, contact_id)


@pytest.mark.parametrize(
    "surrogate", [b"\\ud800", b"\xed\xa0\x80"], ids=["json-escape", "utf-8-encoded"]
)
async def test_a_lone_surrogate_is_not_text(
    client: httpx.AsyncClient, database: Database, contact_id: str, surrogate: bytes
) -> None:
    # Both parse (Python's JSON reader passes surrogates through); neither is text that can
    # be stored or sent.
    head = b'{"contact_id": "%s", "name": "x_seen", ' % contact_id.encode()
    in_properties = head + b'"properties": {"t": "a' + surrogate + b'"}}'
    response = await client.post(
        "/v1/events", content=in_properties, headers={"Content-Type": "application/json"}
    )
    assert "lone surrogate" in located(response)[("body", "properties")]

    in_name = head.replace(b'"x_seen"', b'"x' + surrogate + b'"') + b'"properties": {}}'
    response = await client.post(
        "/v1/events", content=in_name, headers={"Content-Type": "application/json"}
    )
    assert ("body", "name") in located(response)
    assert await nothing_stored(database, contact_id)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_refused(
    client: httpx.AsyncClient, database: Database, contact_id: str, token: str
) -> None:
    # Python's JSON parser reads these; they are not JSON, and PostgreSQL's jsonb refuses
    # them, so they must not get as far as the database.
    in_properties = (
        f'{{"contact_id": "{contact_id}", "name": "x_seen", "properties": {{"v": {token}}}}}'
    )
    response = await client.post(
        "/v1/events", content=in_properties, headers={"Content-Type": "application/json"}
    )
    assert "NaN or Infinity" in located(response)[("body", "properties")]

    in_attributes = f'{{"attributes": {{"score": {token}}}}}'
    response = await client.put(
        f"/v1/contacts/{contact_id}",
        content=in_attributes,
        headers={"Content-Type": "application/json"},
    )
    assert "NaN or Infinity" in located(response)[("body", "attributes")]

    as_rate = f'{{"contact_ids": ["{contact_id}"], "starts_per_second": {token}}}'
    response = await client.post(
        "/v1/journeys/welcome_series/bulk-enrollments",
        content=as_rate,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert await nothing_stored(database, contact_id)


# ----- meanings --------------------------------------------------------------------------


async def test_an_unknown_time_zone_names_the_field(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    response = await client.put(f"/v1/contacts/{contact_id}", json={"timezone": "Mars/Olympus"})

    assert "not an IANA time zone" in located(response)[("body", "timezone")]
    assert await nothing_stored(database, contact_id)


async def test_a_path_like_time_zone_is_refused(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    response = await client.put(
        f"/v1/contacts/{contact_id}", json={"timezone": "../../../etc/passwd"}
    )

    assert ("body", "timezone") in located(response)
    assert await nothing_stored(database, contact_id)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/journeys/no_such_journey/enrollments", {"contact_id": "{c}"}),
        ("POST", "/v1/journeys/no_such_journey/simulate", {}),
        ("POST", "/v1/journeys/no_such_journey/bulk-enrollments", {"contact_ids": ["{c}"]}),
        ("GET", "/v1/journeys/no_such_journey/stats", None),
        ("GET", "/v1/journeys/no_such_journey/bulk-enrollments/b-1", None),
        ("POST", "/v1/contacts/{c}/journeys/no_such_journey/exit", {}),
    ],
)
async def test_an_unknown_journey_is_a_404(
    client: httpx.AsyncClient,
    database: Database,
    contact_id: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    payload = json.loads(json.dumps(body).replace("{c}", contact_id)) if body is not None else None

    response = await client.request(method, path.replace("{c}", contact_id), json=payload)

    assert response.status_code == 404, response.text
    assert response.json()["detail"].startswith("unknown journey 'no_such_journey' (known: ")
    assert await nothing_stored(database, contact_id)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        (iso(datetime.now(UTC) + timedelta(days=2)), "more than a day in the future"),
        ("9999-12-31T23:59:59Z", "more than a day in the future"),
        ("1999-12-31T23:59:59Z", "before 2000-01-01"),
        ("0001-01-01T00:00:00Z", "before 2000-01-01"),
        (0, "ISO 8601"),
        (1_700_000_000, "ISO 8601"),
        ("1700000000", "ISO 8601"),
        ("yesterday", "datetime"),
    ],
)
async def test_occurred_at_stays_within_a_sane_window(
    client: httpx.AsyncClient,
    database: Database,
    contact_id: str,
    occurred_at: object,
    message: str,
) -> None:
    body = {**event(contact_id, "signed_up"), "occurred_at": occurred_at}

    single = await client.post("/v1/events", json=body)
    batch = await client.post("/v1/events/batch", json={"events": [body]})

    assert message in located(single)[("body", "occurred_at")]
    assert message in located(batch)[("body", "events", 0, "occurred_at")]
    assert await nothing_stored(database, contact_id)


async def test_occurred_at_within_the_window_is_accepted(
    client: httpx.AsyncClient, database: Database, contact_id: str
) -> None:
    for at in ("2000-01-01T00:00:00Z", iso(datetime.now(UTC) + timedelta(hours=23))):
        body = {**event(contact_id, "x_seen"), "occurred_at": at}
        response = await client.post("/v1/events", json=body)
        assert response.status_code == 202, response.text
    assert await stored_events(database, contact_id) == 2


async def test_stats_dates_must_be_dates(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/journeys/welcome_series/stats", params={"until": "0.5"})

    assert "ISO 8601" in located(response)[("query", "until")]


# ----- methods ---------------------------------------------------------------------------


async def test_a_wrong_method_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # Two routes serve /u/{token} (GET shows the page, POST unsubscribes); Starlette alone
    # would name only the first.
    response = await client.request("PATCH", "/u/some-token")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json() == {"detail": "Method Not Allowed"}
