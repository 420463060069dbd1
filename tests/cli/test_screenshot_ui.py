"""`docs/screenshot_ui.py` end to end: a real enrollment, the real UI, headless Chromium.

Skipped only where Chromium is missing outside CI; in CI (`CI=true`) its absence fails, as in
tests/stats/test_chromium.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "screenshot_ui.py"
SECONDS = 150


def require_chromium() -> None:
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium package)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot_ui", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_screenshots_the_filtered_enrollment(tmp_path: Path) -> None:
    require_chromium()
    out = tmp_path / "ui.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The CLI's answer to the same query: the one enrollment, running on version 2.
    assert "$ temporal workflow list --query 'JourneyName=\"abandoned_cart\"'" in done.stdout
    listed = done.stdout.split("$ temporal workflow list", 1)[1]
    assert re.search(r"Running\s+journey:abandoned_cart:c-42:cart-7\s+abandoned_cart\.v2", listed)
    data = out.read_bytes()
    ui = script()
    assert ui.png_size(data) == (1400, 900)
    assert ui.looks_rendered(data)


def test_a_flat_image_is_not_taken_for_a_rendered_page() -> None:
    # The committed screenshot passes; the same check on a one-colour page (the UI still
    # loading) fails, so the retry with a longer budget is not dead code.
    ui = script()
    committed = (SCRIPT.parent / "temporal-ui.png").read_bytes()
    assert ui.looks_rendered(committed)
    assert not ui.looks_rendered(flat_png(1400, 900))
    assert len(set(ui.png_pixels(flat_png(40, 30)))) == 1


def flat_png(width: int, height: int) -> bytes:
    """A single-colour RGB PNG, padded past the size threshold with an ancillary chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xf8\xfa\xfc" * width for _ in range(height))
    padding = chunk(b"tEXt", b"Comment\x00" + b"x" * 30_000)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + padding
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
