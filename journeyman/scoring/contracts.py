"""What crosses the lead scorer's workflow boundary: its input, result and activity payloads.

No `from __future__ import annotations` (as in `workflows/contracts.py`): the data converter
resolves these field types inside the workflow sandbox.
"""

from dataclasses import dataclass, field
from datetime import datetime

from workflows.contracts import Event

SCORER_WORKFLOW = "lead_scoring"
APPLY_SCORE_EVENT = "apply_score_event"
CHECK_SCORE_DECAY = "check_score_decay"

# The events a threshold crossing emits; they are stored and routed like any event.
LEAD_QUALIFIED = "lead.qualified"
LEAD_DISQUALIFIED = "lead.disqualified"
THRESHOLD_EVENTS = (LEAD_QUALIFIED, LEAD_DISQUALIFIED)


def scorer_workflow_id(contact_id: str) -> str:
    return f"lead-score:{contact_id}"


@dataclass
class ScorerInput:
    contact_id: str
    # Events received but not yet applied, carried over a continue-as-new.
    pending: list[Event] = field(default_factory=list)
    # Past this many events a run continues as new, carrying its queue, so that its history
    # stays short (also when the server suggests it earlier).
    events_per_run: int = 300


@dataclass
class ScorerResult:
    contact_id: str
    # Events this run (not the whole chain) applied or found already applied.
    applied: int
    qualified: bool


@dataclass
class ApplyScoreRequest:
    event: Event
    # The workflow's clock: the time of an event that carries none.
    now: datetime


@dataclass
class DecayCheckRequest:
    contact_id: str
    # The workflow's clock when its timer fired; part of the change's id, so a retry of the
    # check is recognised.
    now: datetime


@dataclass
class ScoreOutcome:
    """The contact's score state after an application or a decay check."""

    contact_id: str
    score: float
    qualified: bool
    # The event the change emitted (lead.qualified / lead.disqualified), if any.
    emitted: list[str] = field(default_factory=list)
    # Whether this call found the change already recorded (a retry or a duplicate event).
    already_applied: bool = False
    # While qualified: when decay alone takes the score under the disqualify line.
    falls_below_at: datetime | None = None
