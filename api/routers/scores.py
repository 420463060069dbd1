"""Lead scores: `GET /v1/contacts/{contact_id}/score`."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/contacts", tags=["scores"])
