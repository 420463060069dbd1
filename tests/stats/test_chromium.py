"""The report as a browser sees it: served by uvicorn, rendered by headless Chromium.

Skipped only where Chromium is missing outside CI; in CI (`CI=true`) `.ci/run` installs
Debian's `chromium`, and its absence fails. With JOURNEYMAN_REPORT_SCREENSHOT=<path> the test
also saves a screenshot of the report there (how `docs/report.png` is made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from api import create_app
from journeyman.ports import free_port
from journeyman.settings import Settings
from persistence import Database
from tests.stats.conftest import API_KEY
from tests.stats.seed import FUNNEL_WINDOW, JOURNEY, SPLIT_WINDOW

CHROMIUM_SECONDS = 60


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium package)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture
def served(seeded: Database, database_url: str) -> Iterator[str]:
    """The app under uvicorn on a free port, in a thread; yields its base URL."""
    # Its own app and engine: the session's engine belongs to the test event loop.
    app = create_app(Settings(database_url=database_url, api_keys=[API_KEY]))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def run_chromium(url: str, tmp_path: Path, *action: str) -> str:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *action,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_SECONDS)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def report_url(host: str, window: dict[str, str]) -> str:
    # The API key as HTTP Basic password, in the URL: Chromium answers the 401 challenge.
    return f"http://report:{API_KEY}@{host}/journeys/{JOURNEY}?{urlencode(window)}"


def bars(dom: str) -> dict[str, int]:
    return {
        label: int(count)
        for label, count in re.findall(r'data-label="([^"]+)" data-count="(\d+)"', dom)
    }


def test_chromium_shows_the_funnel_numbers(served: str, tmp_path: Path) -> None:
    dom = run_chromium(report_url(served, FUNNEL_WINDOW), tmp_path, "--dump-dom")
    assert "<svg" in dom
    assert bars(dom) == {
        "Entered": 12,
        "first_reminder: reached": 9,
        "first_reminder: sent": 6,
        "first_reminder: opened": 3,
        "first_reminder: clicked": 1,
        "Converted": 5,
    }
    # The text a person reads, next to each bar: the count and its share of entered.
    assert re.search(r"first_reminder: reached</text>.*?>9 <tspan[^>]*>75\.0%</tspan>", dom, re.S)


def test_chromium_shows_the_experiment_and_its_winner(served: str, tmp_path: Path) -> None:
    url = report_url(served, SPLIT_WINDOW)
    dom = run_chromium(url, tmp_path, "--dump-dom")
    assert bars(dom) == {
        "Entered": 600,
        "first_reminder: reached": 600,
        "first_reminder: sent": 600,
        "first_reminder: opened": 240,
        "first_reminder: clicked": 120,
        "second_reminder: reached": 400,
        "second_reminder: sent": 400,
        "second_reminder: opened": 134,
        "second_reminder: clicked": 68,
        "Converted": 94,
    }
    assert '<tr data-variant="A" class="winner">' in dom
    screenshot = os.environ.get("JOURNEYMAN_REPORT_SCREENSHOT")
    if screenshot:
        target = Path(screenshot).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        run_chromium(
            url,
            tmp_path,
            f"--screenshot={target}",
            "--window-size=1280,1500",
            "--hide-scrollbars",
        )
        assert target.stat().st_size > 10_000


def test_without_credentials_the_browser_gets_the_login_challenge(served: str) -> None:
    response = httpx.get(f"http://{served}/journeys/{JOURNEY}", timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
