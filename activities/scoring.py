"""The lead scorer's activities: apply an event's points, notice a crossing by decay alone.

Both are idempotent (the change is keyed by contact and event id, a decay check by its time)
and route the threshold events a change emitted after it committed. Routing is repeated by
every later call for the contact until it succeeded, including the retry of the very call
that crashed between the commit and the routing: the emitted event's row stays unrouted
(`events.routed_at` empty) until then, and journeys de-duplicate it by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from temporalio import activity

from activities.parts import WorkerParts
from journeyman.scoring.contracts import (
    APPLY_SCORE_EVENT,
    CHECK_SCORE_DECAY,
    ApplyScoreRequest,
    DecayCheckRequest,
    ScoreOutcome,
)
from journeyman.scoring.rules import RULES, ScoreRule, ScoringModel
from journeyman.scoring.store import ScoreState, ScoreStore
from journeyman.settings import Settings
from persistence import Database
from workflows.contracts import Event, StartJourneyResult
from workflows.lead_scoring import LeadScorer


class EventRouter(Protocol):
    """What routes an emitted event: `EnrollmentService.route_and_record` in the worker."""

    async def route_and_record(self, event: Event) -> list[StartJourneyResult]: ...


class ScoringActivities:
    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        router: EventRouter,
        rules: Sequence[ScoreRule] = RULES,
    ) -> None:
        self._store = ScoreStore(database, ScoringModel.from_settings(settings, rules))
        self._router = router

    @activity.defn(name=APPLY_SCORE_EVENT)
    async def apply_score_event(self, request: ApplyScoreRequest) -> ScoreOutcome:
        state = await self._store.apply_event(request.event, request.now)
        await self._route_emitted(request.event.contact_id)
        return _outcome(state)

    @activity.defn(name=CHECK_SCORE_DECAY)
    async def check_score_decay(self, request: DecayCheckRequest) -> ScoreOutcome:
        state = await self._store.check_decay(request.contact_id, request.now)
        await self._route_emitted(request.contact_id)
        return _outcome(state)

    async def _route_emitted(self, contact_id: str) -> None:
        # A failure here fails the activity, whose retry finds the change applied and routes
        # again: the event is routed at least once.
        for event in await self._store.pending_threshold_events(contact_id):
            await self._router.route_and_record(event)


def _outcome(state: ScoreState) -> ScoreOutcome:
    return ScoreOutcome(
        contact_id=state.contact_id,
        score=state.score,
        qualified=state.qualified,
        emitted=list(state.emitted),
        already_applied=state.already_applied,
        falls_below_at=state.falls_below_at,
    )


def scoring_parts(
    *,
    database: Database,
    settings: Settings,
    router: EventRouter,
    rules: Sequence[ScoreRule] = RULES,
) -> WorkerParts:
    """The scorer workflow and its activities, for `worker.py`: `router` is the worker's
    `EnrollmentService` (emitted `lead.qualified` / `lead.disqualified` route like any event)."""
    acts = ScoringActivities(database=database, settings=settings, router=router, rules=rules)
    return WorkerParts(
        workflows=[LeadScorer],
        activities=[acts.apply_score_event, acts.check_score_decay],
    )
