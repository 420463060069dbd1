"""Journeys and the runtime they are written with. No I/O happens in this package."""

from workflows.contracts import ContactSnapshot, EnrollmentInput, Event, QuietHours, SendResult
from workflows.runtime import Journey, journey
from workflows.splits import HOLDOUT

__all__ = [
    "HOLDOUT",
    "ContactSnapshot",
    "EnrollmentInput",
    "Event",
    "Journey",
    "QuietHours",
    "SendResult",
    "journey",
]
