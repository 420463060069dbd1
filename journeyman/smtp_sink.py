"""A local SMTP server that keeps every message instead of delivering it.

The tests send real SMTP to it, and `journeyman dev` runs it so a newcomer can read the mail a
journey sent: each message is kept in memory and, given a maildir, written there as an `.eml`
file that any mail client or text editor opens.

    python -m journeyman.smtp_sink --port 1025 --maildir .journeyman/mail
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiosmtpd.controller import Controller

_PARSER = BytesParser(policy=policy.default)
_log = logging.getLogger(__name__)

# Called on the server's thread with each message and the file it was saved to, if any.
OnReceive = Callable[[EmailMessage, Path | None], None]


class SmtpSink:
    """Start with `start()` (or `with SmtpSink(...) as sink`); port 0 picks a free port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        maildir: Path | None = None,
        *,
        refuse: Iterable[str] = (),
        on_receive: OnReceive | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.maildir = maildir
        # Recipients answered with 550, to exercise bounces against a real server.
        self.refused = {address.lower() for address in refuse}
        self.on_receive = on_receive
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._controller: Controller | None = None

    def start(self) -> None:
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        controller = _Controller(
            _Handler(self), hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )
        controller.start()
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        """The messages received for one recipient address."""
        with self._lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[EmailMessage]:
        """Wait until at least `count` messages arrived; TimeoutError after `within` seconds."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                while True:
                    arrived = asyncio.Event()
                    with self._lock:
                        if len(self.messages) >= count:
                            return list(self.messages)
                        self._waiters.append((loop, arrived))
                    await arrived.wait()
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} message(s) within {within}s, got {len(self.messages)}"
            ) from None

    def _receive(self, content: bytes) -> None:
        # Runs on the controller's thread. The file is written first: if that fails the
        # client is told to retry, and the retry must not leave a duplicate in memory.
        message = _PARSER.parsebytes(content)
        assert isinstance(message, EmailMessage)
        number = next(self._numbers)
        saved = None
        if self.maildir is not None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            saved = self.maildir / f"{stamp}-{number}.eml"
            saved.write_bytes(content)
        with self._lock:
            self.messages.append(message)
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        if self.on_receive is not None:
            try:
                self.on_receive(message, saved)
            except Exception:  # the message is kept; a failing observer must not bounce it
                _log.exception("on_receive failed for message %d", number)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.sink.refused:
            # As Postfix words it: real servers quote the address they refuse.
            return f"550 5.1.1 <{address}>: Recipient address rejected: Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            self.sink._receive(envelope.content)
        except OSError:
            # Say "try later" (4xx), not "never" (5xx): a full disk is not the sender's fault.
            _log.exception("Could not save a message")
            return "451 4.3.0 Could not store the message, try again later"
        return "250 Message accepted for delivery"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # With port 0 the OS chose the port; read it before aiosmtpd connects to check readiness.
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Keep mail sent to a local SMTP port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=None, help="write each message here")
    args = parser.parse_args(argv)
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    with SmtpSink(args.host, args.port, args.maildir, on_receive=_announce) as sink:
        where = f", saving each message to {args.maildir.resolve()}" if args.maildir else ""
        banner = f"SMTP sink listening on {sink.host}:{sink.port}{where}. Ctrl-C stops it."
        print(banner, flush=True)
        stopped.wait()


def _announce(message: EmailMessage, saved: Path | None) -> None:
    where = f" -> {saved}" if saved else ""
    print(f"Mail to {message['To']}: {message['Subject']}{where}", flush=True)


if __name__ == "__main__":
    main()
