"""The lead scorer: one workflow per contact (`lead-score:<contact_id>`) applying its scored
events one at a time, and noticing when decay alone disqualifies it.

`EnrollmentService.route` signal-with-starts it with every event a scoring rule matches. The
workflow queues them (de-duplicated by id) and applies each through an activity, which does
the scoring in the database (idempotent, under the contact's lock). While the contact is
qualified it keeps a durable timer for the moment decay alone takes the score under the
disqualify line, re-armed after every change; when it fires, a decay-check activity records
the disqualification. Not qualified with nothing queued, the workflow completes: no timer is
needed, and the next scored event starts a new run. A signal that arrives while it completes
makes the server refuse the completion, so the loop sees the event on its next pass.

Not a Journey: it has no steps, goals or enrollments, only this loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeyman.scoring.contracts import (
        APPLY_SCORE_EVENT,
        CHECK_SCORE_DECAY,
        SCORER_WORKFLOW,
        ApplyScoreRequest,
        DecayCheckRequest,
        ScoreOutcome,
        ScorerInput,
        ScorerResult,
    )
    from workflows.contracts import EVENT_SIGNAL, Event

# A database outage delays scoring and loses nothing: the activities retry with backoff for
# as long as it takes (they are idempotent).
SCORING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
SCORING_TIMEOUT = timedelta(seconds=30)
# The timer fires this long after the computed crossing, so that the score read at that moment
# is under the line for sure, not equal to it up to rounding.
CROSSING_MARGIN = timedelta(seconds=1)


@workflow.defn(name=SCORER_WORKFLOW)
class LeadScorer:
    def __init__(self) -> None:
        self._queue: list[Event] = []
        self._seen: set[str] = set()
        self._qualified = False
        # While qualified: when decay alone takes the score under the disqualify line.
        self._falls_below_at: datetime | None = None

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: Event) -> None:
        # Duplicates (a retried route, a double submit) are dropped here; the activity's own
        # idempotency covers those that arrive in another run.
        if event.id in self._seen:
            return
        self._seen.add(event.id)
        self._queue.append(event)

    @workflow.run
    async def run(self, start: ScorerInput) -> ScorerResult:
        for event in start.pending:
            self.event(event)
        applied = 0
        while True:
            if self._queue:
                if (
                    applied >= start.events_per_run
                    or workflow.info().is_continue_as_new_suggested()
                ):
                    workflow.continue_as_new(
                        ScorerInput(
                            contact_id=start.contact_id,
                            pending=list(self._queue),
                            events_per_run=start.events_per_run,
                        )
                    )
                await self._apply(self._queue.pop(0))
                applied += 1
                continue
            if not self._qualified or self._falls_below_at is None:
                # Nothing queued and no crossing to watch for. Checked right before returning,
                # with no await in between: an event signalled meanwhile fails the completion
                # and is seen on the next pass.
                return ScorerResult(start.contact_id, applied, self._qualified)
            await self._watch_decay(start.contact_id, self._falls_below_at + CROSSING_MARGIN)

    async def _apply(self, event: Event) -> None:
        outcome = await workflow.execute_activity(
            APPLY_SCORE_EVENT,
            ApplyScoreRequest(event=event, now=workflow.now()),
            result_type=ScoreOutcome,
            start_to_close_timeout=SCORING_TIMEOUT,
            retry_policy=SCORING_RETRY,
            summary=f"score {event.name} ({event.id})",
        )
        self._track(outcome)

    async def _watch_decay(self, contact_id: str, at: datetime) -> None:
        """Sleep until `at` unless an event comes first; at `at`, check for the crossing."""
        delay = at - workflow.now()
        if delay > timedelta(0):
            workflow.set_current_details(f"Qualified; decays under the line at {at.isoformat()}")
            try:
                await workflow.wait_condition(
                    lambda: bool(self._queue),
                    timeout=delay,
                    timeout_summary="score decays under the disqualify line",
                )
                return  # an event came first; applying it re-arms the timer
            except TimeoutError:
                pass
        outcome = await workflow.execute_activity(
            CHECK_SCORE_DECAY,
            DecayCheckRequest(contact_id=contact_id, now=workflow.now()),
            result_type=ScoreOutcome,
            start_to_close_timeout=SCORING_TIMEOUT,
            retry_policy=SCORING_RETRY,
            summary="decay check",
        )
        self._track(outcome)

    def _track(self, outcome: ScoreOutcome) -> None:
        self._qualified = outcome.qualified
        self._falls_below_at = outcome.falls_below_at
