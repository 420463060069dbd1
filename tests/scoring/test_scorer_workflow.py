"""The scorer workflow on the time-skipping server: events applied in order and once, and a
threshold crossed by decay alone noticed at the exact moment (a durable timer), once.

The activities are the real ones on the session's database; emitted events are routed by a
real `EnrollmentService` (no journey runs on these task queues, so routing finds nothing to
start, but the event's `routing` column shows it ran).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.scoring import ScoringActivities, scoring_parts
from journeyman.enrollments import EnrollmentService
from journeyman.scoring.contracts import (
    ApplyScoreRequest,
    ScorerInput,
    ScorerResult,
    scorer_workflow_id,
)
from journeyman.scoring.store import emitted_event_id
from journeyman.settings import Settings
from persistence import Database, EventRecord, ScoreChange
from persistence.models import as_utc
from workflows.contracts import Event, StartJourneyResult
from workflows.lead_scoring import CROSSING_MARGIN, LeadScorer

from .conftest import event

HALF_LIFE = timedelta(days=30)


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue, api_keys=["k"])


@dataclass
class Scoring:
    client: Client
    settings: Settings
    database: Database

    async def start(
        self, contact_id: str, events: list[Event]
    ) -> WorkflowHandle[LeadScorer, ScorerResult]:
        return await self.client.start_workflow(
            LeadScorer.run,
            ScorerInput(contact_id=contact_id, pending=events),
            id=scorer_workflow_id(contact_id),
            task_queue=self.settings.task_queue,
        )

    async def changes(self, contact_id: str) -> list[ScoreChange]:
        async with self.database.session() as session:
            query = (
                select(ScoreChange)
                .where(col(ScoreChange.contact_id) == contact_id)
                .order_by(col(ScoreChange.id))
            )
            return list((await session.exec(query)).all())

    async def emitted(self, contact_id: str) -> list[EventRecord]:
        async with self.database.session() as session:
            query = (
                select(EventRecord)
                .where(
                    col(EventRecord.contact_id) == contact_id,
                    col(EventRecord.name).startswith("lead."),
                )
                .order_by(col(EventRecord.occurred_at))
            )
            return list((await session.exec(query)).all())


@pytest.fixture
async def scoring(
    time_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[Scoring]:
    router = EnrollmentService(client=time_env.client, database=database, settings=settings)
    parts = scoring_parts(database=database, settings=settings, router=router)
    async with Worker(
        time_env.client,
        task_queue=settings.task_queue,
        workflows=parts.workflows,
        activities=parts.activities,
    ):
        yield Scoring(time_env.client, settings, database)


async def test_decay_alone_disqualifies_at_the_computed_moment_and_once(
    scoring: Scoring, time_env: WorkflowEnvironment, contact_id: str
) -> None:
    t0 = await time_env.get_current_time()
    events = [
        event(contact_id, "page_viewed", t0, {"path": "/pricing"}),
        event(contact_id, "demo_attended", t0),
        event(contact_id, "webinar_attended", t0),
    ]
    # The same event again, as a redelivery would: de-duplicated, so three applications.
    handle = await scoring.start(contact_id, [*events, events[1]])
    result = await handle.result()  # time skips through the ~26 days of decay

    assert result == ScorerResult(contact_id=contact_id, applied=3, qualified=False)
    crossing = t0 + HALF_LIFE * math.log2(55 / 30)
    changes = await scoring.changes(contact_id)
    assert [c.event_name for c in changes] == [
        "page_viewed",
        "demo_attended",
        "webinar_attended",
        "decay",
    ]
    assert [c.emitted for c in changes] == [None, None, "lead.qualified", "lead.disqualified"]
    decay = changes[-1]
    assert abs(as_utc(decay.at) - (crossing + CROSSING_MARGIN)) < timedelta(minutes=1)
    assert decay.score == pytest.approx(30, abs=1e-3) and decay.score < 30

    emitted = await scoring.emitted(contact_id)
    assert [e.name for e in emitted] == ["lead.qualified", "lead.disqualified"]
    assert all(e.routing is not None for e in emitted)  # routed like any event
    assert emitted[1].properties["cause"] == decay.event_id

    # Later scored events below the line emit nothing more.
    later = await time_env.get_current_time()
    again = await scoring.start(contact_id, [event(contact_id, "email.clicked", later)])
    assert (await again.result()).qualified is False
    assert [e.name for e in await scoring.emitted(contact_id)] == [
        "lead.qualified",
        "lead.disqualified",
    ]


async def test_an_event_while_qualified_re_arms_the_timer(
    scoring: Scoring, time_env: WorkflowEnvironment, contact_id: str
) -> None:
    t0 = await time_env.get_current_time()
    handle = await scoring.start(
        contact_id,
        [
            event(contact_id, "demo_attended", t0),
            event(contact_id, "webinar_attended", t0),
            event(contact_id, "whitepaper_downloaded", t0),
            event(contact_id, "email.clicked", t0),
        ],
    )  # 20 + 15 + 10 + 5 = 50: qualified
    await time_env.sleep(timedelta(days=10))
    t1 = await time_env.get_current_time()
    await handle.signal(LeadScorer.event, event(contact_id, "demo_attended", t1))
    await handle.result()

    at_t1 = 50 * 0.5 ** ((t1 - t0) / HALF_LIFE) + 20
    crossing = t1 + HALF_LIFE * math.log2(at_t1 / 30)
    changes = await scoring.changes(contact_id)
    assert [c.emitted for c in changes].count("lead.disqualified") == 1
    assert changes[-1].event_name == "decay"
    assert abs(as_utc(changes[-1].at) - crossing) < timedelta(minutes=1)


async def test_a_long_queue_continues_as_new_and_applies_everything_once(
    scoring: Scoring, time_env: WorkflowEnvironment, contact_id: str
) -> None:
    t0 = await time_env.get_current_time()
    clicks = [event(contact_id, "email.clicked", t0) for _ in range(5)]
    handle = await scoring.client.start_workflow(
        LeadScorer.run,
        ScorerInput(contact_id=contact_id, pending=clicks, events_per_run=2),
        id=scorer_workflow_id(contact_id),
        task_queue=scoring.settings.task_queue,
    )
    result = await handle.result()  # follows the chain of runs: 2 + 2 + 1 events
    assert result == ScorerResult(contact_id=contact_id, applied=1, qualified=False)
    changes = await scoring.changes(contact_id)
    assert [c.event_id for c in changes] == [c.id for c in clicks]
    # The default email click rule (+5) is capped at 15 a day.
    assert [c.delta for c in changes] == [5, 5, 5, 0, 0]


class FailsFirstRouting:
    """The real router, but the first call fails: a crash between commit and routing."""

    def __init__(self, real: EnrollmentService) -> None:
        self.real = real
        self.calls = 0

    async def route_and_record(self, event: Event) -> list[StartJourneyResult]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("Temporal went away after the commit")
        return await self.real.route_and_record(event)


async def test_a_retry_routes_the_event_an_interrupted_attempt_stored(
    time_env: WorkflowEnvironment, database: Database, settings: Settings, contact_id: str
) -> None:
    router = FailsFirstRouting(
        EnrollmentService(client=time_env.client, database=database, settings=settings)
    )
    acts = ScoringActivities(database=database, settings=settings, router=router)
    now = await time_env.get_current_time()
    await acts.apply_score_event(ApplyScoreRequest(event(contact_id, "demo_attended", now), now))
    await acts.apply_score_event(
        ApplyScoreRequest(event(contact_id, "whitepaper_downloaded", now), now)
    )
    with pytest.raises(ConnectionError):
        await acts.apply_score_event(
            ApplyScoreRequest(
                event(contact_id, "demo_attended", now, event_id=f"{contact_id}-q"), now
            )
        )
    stored = await Scoring(time_env.client, settings, database).emitted(contact_id)
    assert [(e.name, e.routing) for e in stored] == [("lead.qualified", None)]

    retried = await acts.apply_score_event(
        ApplyScoreRequest(event(contact_id, "demo_attended", now, event_id=f"{contact_id}-q"), now)
    )
    assert retried.already_applied and retried.qualified
    stored = await Scoring(time_env.client, settings, database).emitted(contact_id)
    assert len(stored) == 1 and stored[0].routing is not None
    changes = await Scoring(time_env.client, settings, database).changes(contact_id)
    assert stored[0].id == emitted_event_id("lead.qualified", contact_id, changes[-1].id or 0)
