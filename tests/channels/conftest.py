"""Fixtures for the channel adapters: a shared HTTP client and fake providers on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest

from activities.rendering import TemplateRenderer

from .helpers import settings_for
from .provider import FakeProvider, Handler

Serve = Callable[[Handler], FakeProvider]


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """One client for every test, as the worker shares one between its adapters."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(scope="session")
def renderer() -> TemplateRenderer:
    return TemplateRenderer.from_settings(settings_for("http://unused.invalid"))


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a fake provider with the given handler; it stops when the test ends."""
    with ExitStack() as stack:
        yield lambda handler: stack.enter_context(FakeProvider(handler).running())
