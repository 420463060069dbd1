"""`replay_recorded`: the recorded histories under tests/histories, as the suite replays them."""

from __future__ import annotations

from journeyman.replay import ReplayOutcome, recorded_histories, recorded_type, replay_recorded
from tests.journeys.harness import HISTORIES
from tests.replay.probe_journeys import PROBE_CODE


async def test_recorded_histories_replay_against_the_current_code_with_progress() -> None:
    recorded = recorded_histories(HISTORIES / "abandoned_cart.v2")
    seen: list[tuple[int, int]] = []

    def progress(outcome: ReplayOutcome, done: int, total: int) -> None:
        seen.append((done, total))

    report = await replay_recorded(recorded, progress=progress)

    assert recorded and report.ok
    assert {(o.journey, o.version, o.status) for o in report.outcomes} == {
        ("abandoned_cart", 2, "ok")
    }
    assert {o.workflow_id for o in report.outcomes} == {h.workflow_id for h in recorded}
    assert all(o.workflow_id.startswith("abandoned_cart.v2/") for o in report.outcomes)
    assert seen == [(n, len(recorded)) for n in range(1, len(recorded) + 1)]


async def test_a_recorded_history_whose_workflow_the_code_lacks_fails() -> None:
    recorded = recorded_histories(HISTORIES / "welcome_series.v1")

    report = await replay_recorded(recorded, workflows=PROBE_CODE)

    assert recorded and report.failed == len(recorded)
    assert {recorded_type(h) for h in recorded} == {"welcome_series.v1"}
    assert all("no workflow 'welcome_series.v1'" in (o.error or "") for o in report.failures)
