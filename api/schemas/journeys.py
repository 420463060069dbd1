"""Journeys (the catalog) and enrollments (one contact in one journey)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import ContactId, Identifier, ShortText

# A journey's name in a path; an unknown one answers 404 (the catalog lives in code).
JourneyName = Annotated[
    str,
    Path(max_length=100, description="A journey of the catalog.", examples=["welcome_series"]),
]


class JourneyVersionPublic(BaseModel):
    version: int
    newest: bool = Field(description="Whether new enrollments start on this version.")
    active: int = Field(description="Enrollments running on this version now.")
    in_code: bool = Field(
        description="False for a version removed from the code while enrollments still run "
        "on it: they cannot go on until it is put back."
    )
    description: str


class JourneyPublic(BaseModel):
    name: str
    version: int = Field(description="The version new enrollments start on.")
    versions: list[int] = Field(description="Every version a running enrollment may be on.")
    version_details: list[JourneyVersionPublic] = Field(
        description="Each version, oldest first, with how many enrollments run on it: an old "
        "version stays in the code until none does."
    )
    description: str
    triggers: list[str]
    goals: list[str]
    exits: list[str]
    waits_for: list[str]
    key: str | None = Field(description="Event property keying enrollments, e.g. `cart_id`.")
    reentry: Literal["never", "after_exit", "always"]


class EnrollmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: ContactId = Field(examples=["c-1042"])
    key: Identifier | None = Field(default=None, description="Required for keyed journeys.")


class EnrollmentStarted(BaseModel):
    journey: str
    workflow_id: str
    action: Literal["started"]


class ExitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Identifier | None = Field(
        default=None,
        description="For a keyed journey; without it every running enrollment of the contact "
        "in the journey exits.",
    )
    reason: ShortText = "operator"


class ExitOut(BaseModel):
    journey: str
    contact_id: str
    exited: list[str] = Field(description="Workflow ids told to exit.")


class StepPublic(BaseModel):
    name: str
    kind: str
    at: datetime
    outcome: str


class EnrollmentPublic(BaseModel):
    workflow_id: str
    run_id: str
    journey: str
    version: int
    key: str | None
    status: str
    ended_by: str | None
    current_step: str | None
    entered_at: datetime
    ended_at: datetime | None
    source: Literal["live", "database"] = Field(
        description="`live` when the running workflow answered the state query; `database` "
        "for ended enrollments, or when it could not be asked."
    )
    waiting_for: list[str] = Field(default_factory=list)
    wait_until: datetime | None = None
    steps: list[StepPublic] = Field(default_factory=list)
