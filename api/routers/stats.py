"""Routes under /v1 that need an API key: stats (filled in by issue 4's work)."""

from fastapi import APIRouter

router = APIRouter(tags=["stats"])
