"""Routes under /v1 that need an API key: webhooks (filled in by issue 4's work)."""

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
