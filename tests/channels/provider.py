"""A real HTTP server on 127.0.0.1 standing in for a provider: it records each request and
answers with whatever the test's handler decides, including not answering at all."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

# Read the whole request, then close the connection without a word.
DROP: Literal["drop"] = "drop"
# Read the whole request, then say nothing until the test is over.
HANG: Literal["hang"] = "hang"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: httpx.Headers
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True, strict_parsing=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Answer = Reply | Literal["drop", "hang"]
Handler = Callable[[Received], Answer]


class FakeProvider:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.released = threading.Event()
        self._server = _Server(self)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def last(self) -> Received:
        assert self.received, "the provider received nothing"
        return self.received[-1]

    @contextmanager
    def running(self) -> Iterator[FakeProvider]:
        # A short poll, so stopping (which waits for the loop to notice) takes no real time.
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self.released.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class _Server(ThreadingHTTPServer):
    def __init__(self, provider: FakeProvider) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.provider = provider


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do

    def do_POST(self) -> None:
        assert isinstance(self.server, _Server)
        provider = self.server.provider
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        received = Received(
            method=self.command,
            path=self.path,
            headers=httpx.Headers(list(self.headers.items())),
            body=body,
        )
        provider.received.append(received)
        answer = provider.handler(received)
        if answer == HANG:
            provider.released.wait()
        if not isinstance(answer, Reply):
            self.close_connection = True
            return
        content = json.dumps(answer.body).encode() if isinstance(answer.body, dict) else answer.body
        self.send_response(answer.status)
        if isinstance(answer.body, dict):
            self.send_header("Content-Type", "application/json")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what the tests assert, not an access log."""
