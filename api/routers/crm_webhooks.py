"""CRM changes coming in: `POST /v1/webhooks/crm` (signature-verified, outside the API key)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
