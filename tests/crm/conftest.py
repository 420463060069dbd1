"""Fixtures for the CRM connectors: a local HubSpot on a real socket and a shared HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from .fake_hubspot import FakeHubSpot, running_fake_hubspot


@pytest.fixture(scope="session")
async def _hubspot_server() -> AsyncIterator[FakeHubSpot]:
    async with running_fake_hubspot() as fake:
        yield fake


@pytest.fixture
def hubspot(_hubspot_server: FakeHubSpot) -> FakeHubSpot:
    """The local HubSpot with nothing stored, no failures queued and an empty request log."""
    _hubspot_server.reset()
    return _hubspot_server


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
