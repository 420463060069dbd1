"""Journeys and the runtime they are written with. No I/O happens in this package."""

from workflows.contracts import ContactSnapshot, EnrollmentInput, Event, SendResult
from workflows.runtime import Journey, journey

__all__ = ["ContactSnapshot", "EnrollmentInput", "Event", "Journey", "SendResult", "journey"]
