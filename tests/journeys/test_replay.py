"""Recorded histories of every published journey replay against the current code.

A change that makes a journey non-deterministic (reordered steps, a new timer, a removed
activity) fails here instead of breaking running enrollments. Record new histories with
`JOURNEYMAN_RECORD_HISTORIES=1 pytest tests/journeys` (see README).
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.journeys.broken_journeys import ReorderedAbandonedCart
from tests.journeys.harness import HISTORIES
from workflows.catalog import all_versions


def histories(folder: Path) -> list[WorkflowHistory]:
    return [
        WorkflowHistory.from_json(path.stem, path.read_text())
        for path in sorted(folder.glob("*.json"))
    ]


async def replay_failures(replayer: Replayer, recorded: list[WorkflowHistory]) -> dict[str, str]:
    failures: dict[str, str] = {}
    for history in recorded:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = f"{result.replay_failure!r}"
    return failures


@pytest.mark.parametrize("journey_type", [cls.workflow_type() for cls in all_versions()])
async def test_every_published_journey_replays_its_recorded_histories(journey_type: str) -> None:
    recorded = histories(HISTORIES / journey_type)
    assert recorded, f"no recorded history for {journey_type}: record them (see README)"
    failures = await replay_failures(Replayer(workflows=all_versions()), recorded)
    assert failures == {}


async def test_a_reordered_journey_fails_replay() -> None:
    recorded = histories(HISTORIES / "abandoned_cart.v1")
    failures = await replay_failures(Replayer(workflows=[ReorderedAbandonedCart]), recorded)
    assert len(failures) == len(recorded)
    assert all("nondetermin" in message.lower() for message in failures.values())
