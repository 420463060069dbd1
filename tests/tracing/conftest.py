"""Tracing tests share one process-wide OpenTelemetry global; each test gets it fresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.util._once import Once

from journeyman import tracing


@pytest.fixture(autouse=True)
def fresh_tracer_provider() -> Iterator[None]:
    """Let the test install a global tracer provider, and put the previous state back after.

    OpenTelemetry allows the global provider to be set once per process (production wants
    exactly that); tests reset its private globals so none leaks into another test.
    """
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE, tracing._installed)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    tracing._installed = None
    try:
        yield
    finally:
        if tracing._installed is not None:
            tracing._installed.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE, tracing._installed = saved
