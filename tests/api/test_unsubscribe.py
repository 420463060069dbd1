"""One-click unsubscribe links (RFC 8058): GET confirms, POST unsubscribes, bad tokens change
nothing. No API key anywhere here: the signed token is the authorisation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from api import create_app
from journeyman.settings import Settings
from journeyman.signing import Signer
from journeyman.unsubscribe import unsubscribe_url
from persistence import Database, EventRecord
from tests.api.helpers import event, parked_in, result_of, wait_for_rows

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
DAY = 86400


@pytest.fixture
async def browser(app: FastAPI, api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """Anyone on the internet: no API key (`api` keeps the worker running)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    ) as client:
        yield client


def link(settings: Settings, contact_id: str, channel: str = "email") -> str:
    return urlsplit(unsubscribe_url(settings, contact_id, channel)).path


async def consent_events(database: Database, contact_id: str) -> list[EventRecord]:
    query = select(EventRecord).where(
        col(EventRecord.contact_id) == contact_id, col(EventRecord.name) == "unsubscribed"
    )
    async with database.session() as session:
        return list((await session.exec(query)).all())


async def consent(api: httpx.AsyncClient, contact_id: str) -> dict[str, bool]:
    subscriptions: dict[str, bool] = (await api.get(f"/v1/contacts/{contact_id}")).json()[
        "subscriptions"
    ]
    return subscriptions


def test_the_link_is_the_public_url_and_a_token_for_contact_and_channel() -> None:
    settings = Settings(public_url="https://shop.example/journeys/", secret_key="s3cret")
    url = unsubscribe_url(settings, "c-42", "sms")
    prefix = "https://shop.example/journeys/u/"
    assert url.startswith(prefix)
    claim = Signer("s3cret").read_unsubscribe(url.removeprefix(prefix), max_age=_days(1))
    assert (claim.contact_id, claim.channel) == ("c-42", "sms")


async def test_get_shows_a_confirmation_page_and_changes_nothing(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    contact_id: str,
    database: Database,
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})

    page = await browser.get(link(settings, contact_id))

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "Unsubscribe from marketing emails?" in page.text
    assert '<form method="post">' in page.text
    # The button posts what mail clients post for one click.
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert (await consent(api, contact_id))["email"] is True
    assert await consent_events(database, contact_id) == []


async def test_post_unsubscribes_at_once_and_a_second_post_changes_nothing(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    contact_id: str,
    database: Database,
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
    path = link(settings, contact_id)

    # A mail client's RFC 8058 one-click POST, then the page's button again (empty body).
    first = await browser.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    second = await browser.post(path)

    for response in (first, second):
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
        assert "marketing emails" in response.text
    assert second.text == first.text
    assert await consent(api, contact_id) == {"email": False, "sms": True, "push": True}
    [recorded] = await consent_events(database, contact_id)
    assert recorded.properties == {"channel": "email", "source": "link"}
    assert recorded.routed_at is not None
    # Once unsubscribed, the link's page says so instead of asking again.
    again = await browser.get(path)
    assert "You are unsubscribed" in again.text


async def test_the_link_unsubscribes_only_its_own_channel(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, settings: Settings, contact_id: str
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    page = await browser.get(link(settings, contact_id, "sms"))
    assert "marketing text messages" in page.text
    await browser.post(link(settings, contact_id, "sms"))
    assert await consent(api, contact_id) == {"email": True, "sms": False, "push": True}


async def test_a_one_click_unsubscribe_ends_the_journeys_that_exit_on_it(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    contact_id: str,
    database: Database,
    dev_env: WorkflowEnvironment,
) -> None:
    welcome = f"journey:welcome_series:{contact_id}"
    await api.post("/v1/events", json=event(contact_id, "signed_up"))
    await parked_in(dev_env.client, welcome, "pause_1")
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 1)

    await browser.post(link(settings, contact_id))

    result = await result_of(dev_env.client, welcome)
    assert (result.status, result.ended_by) == ("exited", "event:unsubscribed")
    [recorded] = await consent_events(database, contact_id)
    assert [(r["journey"], r["action"]) for r in recorded.routing or []] == [
        ("welcome_series", "signalled")
    ]


def _tampered(token: str) -> str:
    payload, rest = token.split(".", 1)
    swapped = "A" if payload[0] != "A" else "B"
    return f"{swapped}{payload[1:]}.{rest}"


def _made_days_ago(secret: str, contact_id: str, days: int, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda _: int(time.time()) - days * DAY)
        return Signer(secret).unsubscribe_token(contact_id, "email")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    ("forge", "says"),
    [
        ("tampered", "is not valid"),
        ("foreign", "is not valid"),
        ("expired", "has expired"),
        ("other_channel", "is not valid"),
        ("garbage", "is not valid"),
    ],
)
async def test_a_bad_token_is_400_with_a_clear_page_and_changes_nothing(
    api: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    contact_id: str,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    forge: str,
    says: str,
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    max_age = settings.unsubscribe_link_max_age_days
    token = {
        "tampered": _tampered(Signer(settings.secret_key).unsubscribe_token(contact_id, "email")),
        "foreign": Signer("another-installation").unsubscribe_token(contact_id, "email"),
        "expired": _made_days_ago(settings.secret_key, contact_id, max_age + 1, monkeypatch),
        "other_channel": Signer(settings.secret_key).unsubscribe_token(contact_id, "webhook"),
        "garbage": "not-a-token",
    }[forge]

    response = await browser.request(method, f"/u/{token}")

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert f"This link {says}" in response.text
    assert "Nothing was changed" in response.text
    assert await consent(api, contact_id) == {"email": True, "sms": True, "push": True}
    assert await consent_events(database, contact_id) == []


async def test_a_link_lives_as_long_as_the_setting_says(
    app: FastAPI,
    browser: httpx.AsyncClient,
    settings: Settings,
    contact_id: str,
    api: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    days = settings.unsubscribe_link_max_age_days
    still_valid = _made_days_ago(settings.secret_key, contact_id, days - 1, monkeypatch)
    assert (await browser.get(f"/u/{still_valid}")).status_code == 200

    short = settings.model_copy(update={"unsubscribe_link_max_age_days": 1})
    async with _serving(short, app) as strict:
        two_days_old = _made_days_ago(settings.secret_key, contact_id, 2, monkeypatch)
        assert (await strict.get(f"/u/{two_days_old}")).status_code == 400


async def test_a_link_for_a_contact_that_no_longer_exists_is_404(
    browser: httpx.AsyncClient, settings: Settings, contact_id: str
) -> None:
    for method in ("GET", "POST"):
        response = await browser.request(method, link(settings, contact_id))
        assert response.status_code == 404
        assert "could not find" in response.text


async def test_pages_escape_what_they_show(
    app: FastAPI, settings: Settings, contact_id: str, api: httpx.AsyncClient
) -> None:
    await api.put(f"/v1/contacts/{contact_id}", json={})
    branded = settings.model_copy(
        update={"email_from": '"<script>alert(1)</script>" <shop@example.com>'}
    )
    async with _serving(branded, app) as client:
        page = await client.get(link(settings, contact_id))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_a_post_still_unsubscribes_when_temporal_is_down(
    settings: Settings, database: Database, contact_id: str, api: httpx.AsyncClient
) -> None:
    # The person cannot retry a mail client's one-click POST: the consent change is what
    # counts (sends check it), and the event is routed by the contact's next change.
    await api.put(f"/v1/contacts/{contact_id}", json={})
    cut_off = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    async with _serving(cut_off, None, database=database) as client:
        response = await client.post(link(settings, contact_id))
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert (await consent(api, contact_id))["email"] is False
    [recorded] = await consent_events(database, contact_id)
    assert recorded.routed_at is None


@asynccontextmanager
async def _serving(
    settings: Settings, like: FastAPI | None, *, database: Database | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Another app with other settings, on the same database (and Temporal, if `like`)."""
    app = create_app(
        settings,
        client=like.state.client if like else None,
        database=database or (like.state.database if like else None),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
        ) as client,
    ):
        yield client


def _days(days: int) -> timedelta:
    return timedelta(days=days)
