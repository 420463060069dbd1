"""The answer to erasing a contact: its pseudonym and what was removed, no personal data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ErasureOut(BaseModel):
    pseudonym: str = Field(
        description="`erased:<16 hex>`: what anonymised rows (messages, enrollments) now name "
        "the contact by; the same for every request about the same contact id.",
        examples=["erased:3f2a9c0d1e5b7a68"],
    )
    requested_at: datetime = Field(description="When the first erasure of this id began.")
    completed_at: datetime | None = Field(description="When the latest sweep finished.")
    counts: dict[str, int] = Field(
        description="Rows deleted or anonymised per table, and `workflows_terminated`, summed "
        "over every request for this id."
    )
