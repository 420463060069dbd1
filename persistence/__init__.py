"""Tables, engines and migrations. The same code runs on SQLite and PostgreSQL."""

from persistence.db import Database, async_url, create_database, migrate
from persistence.models import (
    Contact,
    Engagement,
    Enrollment,
    EnrollmentStep,
    EventRecord,
    Message,
)

__all__ = [
    "Contact",
    "Database",
    "Engagement",
    "Enrollment",
    "EnrollmentStep",
    "EventRecord",
    "Message",
    "async_url",
    "create_database",
    "migrate",
]
