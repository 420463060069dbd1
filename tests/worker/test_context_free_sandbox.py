"""The worker's sandbox skips the SDK's per-payload context lookup only where it changes nothing.

`journeyman.sandbox.ContextFreeSandboxedRunner` answers "which serialization context?" from
outside the sandbox when the data converter ignores contexts. Checked here: which converters
qualify, that a run then never enters the sandbox for that question (and the SDK's runner
does, so the count means something), that the journey does the same under both, and that
its history replays on the SDK's own runner.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, Self

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.converter import (
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, _runner

from journeyman.payloads import journeyman_data_converter
from journeyman.redaction import redacting_data_converter
from journeyman.sandbox import ContextFreeSandboxedRunner, ignores_context
from journeyman.settings import Settings
from tests.journeys.harness import Run, enrolled
from worker import workflow_runner
from workflows.post_purchase import PostPurchase

ORDER = {"order_id": "o-1", "related_products": ["socks"]}


class ContextCodec(PayloadCodec, WithSerializationContext):
    """A codec that would key its work by context (say, a key per activity type)."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    async def encode(self, payloads: list[Payload]) -> list[Payload]:  # type: ignore[override]
        return payloads

    async def decode(self, payloads: list[Payload]) -> list[Payload]:  # type: ignore[override]
        return payloads

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(context)


def test_journeymans_converter_ignores_context() -> None:
    ours = redacting_data_converter(Settings(), journeyman_data_converter())
    assert ignores_context(ours)
    assert ignores_context(DataConverter.default)
    assert isinstance(workflow_runner(ours), ContextFreeSandboxedRunner)


def test_a_converter_that_uses_context_keeps_the_sdks_runner() -> None:
    keyed = replace(DataConverter.default, payload_codec=ContextCodec())
    assert not ignores_context(keyed)
    runner = workflow_runner(keyed)
    assert type(runner) is SandboxedWorkflowRunner
    # The same sandbox either way.
    assert runner.restrictions == workflow_runner().restrictions


@pytest.fixture
def context_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every time a run's sandbox is entered to find a payload's serialization context."""
    calls: list[object] = []
    original = _runner._Instance.get_serialization_context

    def counted(self: Any, command_info: Any) -> Any:
        calls.append(command_info)
        return original(self, command_info)

    monkeypatch.setattr(_runner._Instance, "get_serialization_context", counted)
    yield calls


async def post_purchase(
    env: WorkflowEnvironment, runner: SandboxedWorkflowRunner
) -> tuple[Run, WorkflowHistory]:
    async with enrolled(env, PostPurchase, trigger_properties=ORDER, runner=runner) as run:
        await run.result()
    return run, await run.handle.fetch_history()


async def test_a_run_never_enters_the_sandbox_for_a_context_and_does_the_same(
    time_env: WorkflowEnvironment, context_lookups: list[object]
) -> None:
    context_free = workflow_runner(time_env.client.data_converter)
    assert isinstance(context_free, ContextFreeSandboxedRunner)
    run, history = await post_purchase(time_env, context_free)
    assert context_lookups == []

    sdk_run, _ = await post_purchase(time_env, SandboxedWorkflowRunner(context_free.restrictions))
    assert len(context_lookups) > 10  # the SDK's runner asks per payload sequence

    sent = [(s.template, s.after, s.context) for s in run.capture.sends]
    assert sent == [(s.template, s.after, s.context) for s in sdk_run.capture.sends]
    assert [s.template for s in run.capture.sends] == [
        "post_purchase/thank_you",
        "post_purchase/review_request",
    ]
    assert run.capture.sends[1].after == timedelta(days=7)
    assert [r.kind for r in run.capture.lifecycle] == [r.kind for r in sdk_run.capture.lifecycle]
    result, sdk_result = await run.result(), await sdk_run.result()
    assert result.status == sdk_result.status == "completed"
    assert [(s.name, s.kind, s.outcome) for s in result.steps] == [
        (s.name, s.kind, s.outcome) for s in sdk_result.steps
    ]

    # What the context-free run wrote replays on the SDK's own sandbox and converter.
    replayed = await Replayer(workflows=[PostPurchase]).replay_workflow(history)
    assert replayed.replay_failure is None
