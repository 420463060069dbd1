"""The command line's log handlers write provider refusals scrubbed of addresses and secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from journeyman.cli import _redact_logs
from journeyman.settings import Settings

SMTP_PASSWORD = "hunter2-but-longer"


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    before = {h: list(h.filters) for h in root.handlers}
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for other, filters in before.items():
            other.filters = filters


def test_every_handler_writes_refusals_without_the_address_or_the_secret(
    root_stream: io.StringIO,
) -> None:
    _redact_logs(Settings(smtp_password=SMTP_PASSWORD))
    log = logging.getLogger("temporalio.activity")
    try:
        raise RuntimeError(f"550 jane.doe@example.com unknown (auth {SMTP_PASSWORD})")
    except RuntimeError:
        log.warning("Completing activity as failed: %s", "send_message", exc_info=True)

    written = root_stream.getvalue()
    assert "Completing activity as failed: send_message" in written
    assert "550 [email] unknown" in written  # the traceback's last line, scrubbed
    assert "jane.doe@example.com" not in written
    assert SMTP_PASSWORD not in written
