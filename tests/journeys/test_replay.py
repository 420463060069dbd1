"""Recorded histories of every published journey replay against the current code.

A change that makes a journey non-deterministic (reordered steps, a new timer, a removed
activity) fails here instead of breaking running enrollments. Record new histories with
`JOURNEYMAN_RECORD_HISTORIES=1 pytest tests/journeys` (see README). The replaying is
`journeyman.replay`, the same code `journeyman replay` runs against a server before a deploy.
"""

import pytest

from journeyman.replay import recorded_histories, replay_recorded
from tests.journeys.broken_journeys import ReorderedAbandonedCart
from tests.journeys.harness import HISTORIES
from workflows.catalog import all_versions


@pytest.mark.parametrize("journey_type", [cls.workflow_type() for cls in all_versions()])
async def test_every_published_journey_replays_its_recorded_histories(journey_type: str) -> None:
    recorded = recorded_histories(HISTORIES / journey_type)
    assert recorded, f"no recorded history for {journey_type}: record them (see README)"
    report = await replay_recorded(recorded)
    failures = {outcome.workflow_id: outcome.error for outcome in report.failures}
    assert failures == {}
    assert report.checked == len(recorded)


async def test_a_reordered_journey_fails_replay() -> None:
    recorded = recorded_histories(HISTORIES / "abandoned_cart.v1")
    report = await replay_recorded(recorded, workflows=[ReorderedAbandonedCart])
    failures = {outcome.workflow_id: outcome.error or "" for outcome in report.failures}
    assert len(failures) == len(recorded)
    assert all("nondetermin" in message.lower() for message in failures.values())


def test_every_recorded_history_has_its_workflow_in_the_code() -> None:
    # A version removed while histories of it are kept would go unchecked by the test above.
    recorded = {folder.name for folder in HISTORIES.iterdir() if folder.is_dir()}
    assert recorded <= {cls.workflow_type() for cls in all_versions()}
