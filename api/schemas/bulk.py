"""Bulk enrollments: what `POST /v1/journeys/{name}/bulk-enrollments` takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import ShortText


class BulkEnrollmentCreate(BaseModel):
    """Exactly one of `segment` and `contact_ids` (ids are de-duplicated, order kept)."""

    model_config = ConfigDict(extra="forbid")

    segment: ShortText | None = None
    contact_ids: list[str] | None = None
    starts_per_second: float | None = Field(
        default=None, gt=0, le=10_000, description="default: JOURNEYMAN_BULK_STARTS_PER_SECOND"
    )

    @model_validator(mode="after")
    def _one_source(self) -> BulkEnrollmentCreate:
        if (self.segment is None) == (self.contact_ids is None):
            raise ValueError("give either 'segment' or 'contact_ids'")
        return self


class BulkEnrollmentStarted(BaseModel):
    id: str
    workflow_id: str
    journey: str
    # "segment:<name>" or "list:<list id>".
    source: str
    total: int
    starts_per_second: float
    progress_url: str


class BulkEnrollmentProgress(BaseModel):
    id: str
    workflow_id: str
    journey: str
    source: str
    status: Literal["running", "completed", "failed"]
    total: int
    done: int
    started: int
    skipped: dict[str, int]
    failed: int
    errors: list[str]
    starts_per_second: float
    # Contacts processed per second of the enrollment's time so far.
    rate: float
    eta_seconds: float | None
    started_at: datetime | None
    finished_at: datetime | None
    summary: str
