"""GET /journeys/{name}: the HTML report, its numbers, and its own auth (Basic or Bearer)."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from tests.stats.conftest import API_KEY
from tests.stats.seed import FUNNEL_WINDOW, JOURNEY, SPLIT_WINDOW

URL = f"/journeys/{JOURNEY}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
async def browser(stats_api: httpx.AsyncClient) -> httpx.AsyncClient:
    """The stats client without its bearer header: each test says how it authenticates."""
    del stats_api.headers["Authorization"]
    return stats_api


def bar(html: str, label: str) -> int:
    found = re.search(rf'data-label="{re.escape(label)}" data-count="(\d+)"', html)
    assert found, label
    return int(found.group(1))


async def test_the_report_shows_the_funnel_and_step_numbers(browser: httpx.AsyncClient) -> None:
    response = await browser.get(URL, params=FUNNEL_WINDOW, headers=basic("me", API_KEY))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert "<svg" in html
    assert bar(html, "Entered") == 12
    assert bar(html, "first_reminder: reached") == 9
    assert bar(html, "first_reminder: sent") == 6
    assert bar(html, "first_reminder: opened") == 3
    assert bar(html, "first_reminder: clicked") == 1
    assert bar(html, "Converted") == 5
    # Only send steps are funnel bars; every step is in the table.
    assert 'data-label="grace_period' not in html
    row = re.search(r'<tr data-step="first_reminder">(.*?)</tr>', html, re.S)
    assert row
    cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(1))).strip()
    assert cells == (
        "first_reminder send 9 75.0% 6 1 frequency_cap 1 unsubscribed 1 5 83.3% 3 50.0% "
        "1 16.7% 4 44.4%"
    )
    # Bars are drawn to scale: 9 of 12 entered is three quarters of the track.
    assert re.search(r'width="315.0" height="20" class="fill"', html)


async def test_the_winner_is_marked_only_when_significant(browser: httpx.AsyncClient) -> None:
    html = (await browser.get(URL, params=SPLIT_WINDOW, headers=basic("", API_KEY))).text
    assert "Winner: <strong>A</strong>" in html
    assert '<tr data-variant="A" class="winner">' in html
    assert '<tr data-variant="B">' in html
    assert html.count('class="badge">winner') == 1
    # The first 20 minutes of the test: every group converted 20 of 20, so nothing differs.
    early = {"since": "2002-06-01T00:00:00Z", "until": "2002-06-01T00:20:00Z"}
    even = (await browser.get(URL, params=early, headers=basic("", API_KEY))).text
    assert '<section class="experiment" data-step="second_reminder_test">' in even
    assert "No significant winner against holdout yet." in even
    assert 'class="winner"' not in even
    assert 'class="badge"' not in even


async def test_the_report_takes_the_same_filters(browser: httpx.AsyncClient) -> None:
    auth = basic("me", API_KEY)
    v1 = (await browser.get(URL, params={**FUNNEL_WINDOW, "version": 1}, headers=auth)).text
    assert bar(v1, "Entered") == 2
    assert "Version 1" in v1
    bad = await browser.get(
        URL, params={"since": "2001-03-02", "until": "2001-03-01"}, headers=auth
    )
    assert bad.status_code == 422
    assert "'since' must not be after" in bad.json()["detail"]
    assert (await browser.get("/journeys/nope", headers=auth)).status_code == 404


async def test_a_bearer_key_works_too(browser: httpx.AsyncClient) -> None:
    response = await browser.get(URL, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("me", "wrong"),
        basic(API_KEY, ""),  # the key as user name is not the password
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEY},
    ],
    ids=["none", "wrong-password", "key-as-user", "garbled", "wrong-bearer", "no-scheme"],
)
async def test_without_the_key_the_browser_is_asked_to_log_in(
    browser: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await browser.get(URL, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="Journeyman"')
    assert "API key" in response.json()["detail"]
