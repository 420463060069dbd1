"""Public routes: metrics (filled in by issue 4's work)."""

from fastapi import APIRouter

router = APIRouter(tags=["metrics"])
