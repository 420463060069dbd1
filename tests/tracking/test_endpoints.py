"""GET /t/o/{token} and GET /t/c/{token} against the API app and the real database."""

from __future__ import annotations

import asyncio
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from itsdangerous.encoding import base64_decode, base64_encode
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from journeyman.engagement import EngagementService, opened_event_id
from journeyman.enrollments import EnrollmentService
from journeyman.settings import Settings
from journeyman.signing import InvalidToken, Signer, click_token, open_token, read_tracking
from persistence import Contact, Database, Engagement, EventRecord, Message
from tests.activities.conftest import closed_port

from .conftest import add_message

LINKS = ["https://shop.example/red", "https://shop.example/blue?size=m&fit=slim"]
GIF_MAGIC = b"GIF89a"


def signer(settings: Settings) -> Signer:
    return Signer(settings.secret_key)


async def state(
    database: Database, message_id: str
) -> tuple[Message, list[Engagement], list[EventRecord]]:
    async with database.session() as session:
        message = await session.get(Message, message_id, populate_existing=True)
        engagements = (
            await session.exec(
                select(Engagement)
                .where(col(Engagement.message_id) == message_id)
                .order_by(col(Engagement.id))
            )
        ).all()
        events = (
            await session.exec(
                select(EventRecord)
                .where(col(EventRecord.contact_id) == (message.contact_id if message else ""))
                .order_by(col(EventRecord.occurred_at), col(EventRecord.id))
            )
        ).all()
    assert message is not None
    return message, list(engagements), list(events)


def assert_pixel(response: httpx.Response, code: int) -> None:
    assert response.status_code == code
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(GIF_MAGIC)
    assert "no-store" in response.headers["cache-control"]


async def test_first_open_records_and_routes_email_opened_once(
    web: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    message = await add_message(database, LINKS)
    token = open_token(signer(settings), message.message_id)

    assert_pixel(await web.get(f"/t/o/{token}"), 200)
    opened, engagements, events = await state(database, message.message_id)
    assert opened.opened_at is not None
    assert [e.kind for e in engagements] == ["opened"]
    [event] = events
    assert (event.id, event.name) == (opened_event_id(message.message_id), "email.opened")
    assert event.properties == {
        "journey": "welcome_series",
        "step": "welcome",
        "message_id": message.message_id,
    }
    assert event.routed_at is not None

    assert_pixel(await web.get(f"/t/o/{token}"), 200)
    again, engagements, events = await state(database, message.message_id)
    assert again.opened_at == opened.opened_at
    assert [e.kind for e in engagements] == ["opened", "opened"]
    assert [e.name for e in events] == ["email.opened"]


async def test_click_redirects_to_exactly_the_stored_url_and_counts_every_click(
    web: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    message = await add_message(database, LINKS)
    token = click_token(signer(settings), message.message_id, 1)

    response = await web.get(f"/t/c/{token}")

    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/blue?size=m&fit=slim"
    first, engagements, events = await state(database, message.message_id)
    assert first.clicks == 1 and first.first_clicked_at is not None
    # A click implies the open, though no pixel was loaded.
    assert first.opened_at is not None
    assert [(e.kind, e.url, e.detail) for e in engagements] == [
        ("clicked", LINKS[1], {"link_index": 1})
    ]
    assert sorted(e.name for e in events) == ["email.clicked", "email.opened"]
    [clicked] = [e for e in events if e.name == "email.clicked"]
    assert clicked.properties == {
        "journey": "welcome_series",
        "step": "welcome",
        "message_id": message.message_id,
        "url": LINKS[1],
        "link_index": 1,
    }
    assert all(e.routed_at is not None for e in events)

    other = await web.get(f"/t/c/{click_token(signer(settings), message.message_id, 0)}")
    assert other.headers["location"] == LINKS[0]
    second, engagements, events = await state(database, message.message_id)
    assert second.clicks == 2
    assert second.first_clicked_at == first.first_clicked_at
    assert second.opened_at == first.opened_at
    assert sorted(e.name for e in events) == ["email.clicked", "email.clicked", "email.opened"]
    assert len({e.id for e in events}) == 3


def _edited(token: str, **changes: Any) -> str:
    """The token with its payload changed (say, another link index) and the old signature."""
    compressed = token.startswith(".")
    payload, timestamp, signature = token.removeprefix(".").split(".")
    data = base64_decode(payload)
    claims = json.loads(zlib.decompress(data) if compressed else data)
    data = json.dumps({**claims, **changes}, separators=(",", ":")).encode()
    edited = ("." if compressed else "") + base64_encode(
        zlib.compress(data) if compressed else data
    ).decode()
    return f"{edited}.{timestamp}.{signature}"


@pytest.mark.parametrize(
    "message_id",
    ["m-1", f"journey:welcome_series:c-1:{'0' * 36}:welcome"],
    ids=["plain", "compressed"],
)
def test_an_unchanged_edit_is_still_valid_so_the_edit_tests_test_the_change(
    settings: Settings, message_id: str
) -> None:
    token = click_token(signer(settings), message_id, 0)
    assert token.startswith(".") == (message_id != "m-1")  # itsdangerous zips long payloads
    max_age = timedelta(days=1)
    same = read_tracking(signer(settings), _edited(token), click=True, max_age=max_age)
    assert (same.message_id, same.link) == (message_id, 0)
    with pytest.raises(InvalidToken):
        read_tracking(signer(settings), _edited(token, l=1), click=True, max_age=max_age)


async def _nothing_recorded(database: Database, message_id: str) -> None:
    message, engagements, events = await state(database, message_id)
    assert (message.clicks, message.opened_at, message.first_clicked_at) == (0, None, None)
    assert engagements == [] and events == []


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda s, m: click_token(Signer("someone-else"), m, 0), 400, id="forged"),
        pytest.param(lambda s, m: _edited(click_token(s, m, 0), l=1), 400, id="edited"),
        pytest.param(lambda s, m: open_token(s, m), 400, id="open-token"),
        pytest.param(lambda s, m: "not-a-token", 400, id="garbage"),
        pytest.param(lambda s, m: click_token(s, m, 2), 404, id="index-out-of-range"),
        pytest.param(lambda s, m: click_token(s, m + "-other", 0), 404, id="unknown-message"),
    ],
)
async def test_a_bad_click_token_gets_a_4xx_no_redirect_and_records_nothing(
    web: httpx.AsyncClient, database: Database, settings: Settings, make: Any, code: int
) -> None:
    message = await add_message(database, LINKS)

    response = await web.get(f"/t/c/{make(signer(settings), message.message_id)}")

    assert response.status_code == code
    assert "location" not in response.headers
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]
    await _nothing_recorded(database, message.message_id)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(lambda s, m: open_token(Signer("someone-else"), m), 400, id="forged"),
        pytest.param(lambda s, m: _edited(open_token(s, m), m=m + "x"), 400, id="edited"),
        pytest.param(lambda s, m: click_token(s, m, 0), 400, id="click-token"),
        pytest.param(lambda s, m: open_token(s, m + "-other"), 404, id="unknown-message"),
    ],
)
async def test_a_bad_open_token_still_gets_the_pixel_with_a_4xx_and_records_nothing(
    web: httpx.AsyncClient, database: Database, settings: Settings, make: Any, code: int
) -> None:
    message = await add_message(database, LINKS)

    assert_pixel(await web.get(f"/t/o/{make(signer(settings), message.message_id)}"), code)
    await _nothing_recorded(database, message.message_id)


async def test_concurrent_hits_count_every_click_and_one_open(
    web: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    message = await add_message(database, LINKS)
    click = f"/t/c/{click_token(signer(settings), message.message_id, 0)}"
    pixel = f"/t/o/{open_token(signer(settings), message.message_id)}"

    answers = await asyncio.gather(
        *[web.get(click) for _ in range(10)], *[web.get(pixel) for _ in range(10)]
    )

    assert [a.status_code for a in answers] == [302] * 10 + [200] * 10
    row, engagements, events = await state(database, message.message_id)
    assert row.clicks == 10
    assert sorted(e.kind for e in engagements) == ["clicked"] * 10 + ["opened"] * 10
    assert sorted(e.name for e in events) == ["email.clicked"] * 10 + ["email.opened"]


async def test_a_click_while_temporal_is_down_still_redirects_and_is_routed_by_the_next_hit(
    database: Database,
    settings: Settings,
    dev_env: WorkflowEnvironment,
    with_test_journey: None,
) -> None:
    # The test journey listens for email.clicked, so routing a click must reach Temporal.
    message = await add_message(database, LINKS)
    down = await Client.connect(f"127.0.0.1:{closed_port()}", lazy=True)
    services = [
        EngagementService(
            database=database,
            enrollments=EnrollmentService(client=client, database=database, settings=settings),
            settings=settings,
        )
        for client in (down, dev_env.client)
    ]
    token = click_token(signer(settings), message.message_id, 0)

    lost = await services[0].clicked(services[0].read_click(token))

    # Nobody listens for email.opened, so only the click needed Temporal.
    assert lost.url == LINKS[0] and lost.routed == (opened_event_id(message.message_id),)
    _row, _engagements, events = await state(database, message.message_id)
    [click] = [e for e in events if e.name == "email.clicked"]
    assert click.routed_at is None

    pixel = open_token(signer(settings), message.message_id)
    later = await services[1].opened(services[1].read_open(pixel))

    assert later.routed == (click.id,)
    _row, _engagements, events = await state(database, message.message_id)
    assert all(e.routed_at is not None for e in events)


async def test_a_click_wakes_a_dormant_contact_an_open_does_not(
    web: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    """A click is the contact acting; a pixel may be a mail client or a privacy proxy."""
    message = await add_message(database, LINKS)
    async with database.session() as session:
        contact = await session.get(Contact, message.contact_id)
        assert contact is not None
        contact.dormant_at = datetime.now(UTC) - timedelta(days=1)
        session.add(contact)
        await session.commit()

    assert_pixel(await web.get(f"/t/o/{open_token(signer(settings), message.message_id)}"), 200)
    assert await dormant_at(database, message.contact_id) is not None

    click = click_token(signer(settings), message.message_id, 0)
    assert (await web.get(f"/t/c/{click}")).status_code == 302
    assert await dormant_at(database, message.contact_id) is None


async def dormant_at(database: Database, contact_id: str) -> datetime | None:
    async with database.session() as session:
        contact = await session.get(Contact, contact_id, populate_existing=True)
    assert contact is not None
    return contact.dormant_at
