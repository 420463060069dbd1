"""Tables, engines and migrations. The same code runs on SQLite and PostgreSQL."""

from persistence.db import Database, async_url, create_database, migrate
from persistence.models import (
    BulkListItem,
    Contact,
    CrmFieldState,
    CrmInboundEvent,
    CrmOutbox,
    CrmTask,
    Engagement,
    Enrollment,
    EnrollmentStep,
    EventRecord,
    LeadScore,
    Message,
    ScoreChange,
    SegmentMembership,
)

__all__ = [
    "BulkListItem",
    "Contact",
    "CrmFieldState",
    "CrmInboundEvent",
    "CrmOutbox",
    "CrmTask",
    "Database",
    "Engagement",
    "Enrollment",
    "EnrollmentStep",
    "EventRecord",
    "LeadScore",
    "Message",
    "ScoreChange",
    "SegmentMembership",
    "async_url",
    "create_database",
    "migrate",
]
