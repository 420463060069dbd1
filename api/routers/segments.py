"""Segments: `GET /v1/segments` and `GET /v1/segments/{name}`."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/segments", tags=["segments"])
