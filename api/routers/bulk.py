"""Bulk enrollments: `POST /v1/journeys/{name}/bulk-enrollments` and their progress."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/journeys", tags=["bulk enrollments"])
