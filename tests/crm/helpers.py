"""Builders shared by the CRM connector tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from activities.crm import CrmContact, CrmTaskRequest, HubSpotConnector
from journeyman.settings import Settings

from .fake_hubspot import TOKEN, FakeHubSpot

DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def hubspot_connector(
    hubspot: FakeHubSpot, http: httpx.AsyncClient, **overrides: Any
) -> HubSpotConnector:
    values: dict[str, Any] = {
        "api_url": hubspot.url,
        "token": TOKEN,
        "http": http,
        "timeout": 5.0,
        **overrides,
    }
    return HubSpotConnector(**values)


def contact(n: int = 1, **fields: Any) -> CrmContact:
    values: dict[str, Any] = {
        "contact_id": f"c-{n}",
        "email": f"lead{n}@example.com",
        "crm_id": None,
        "properties": {"journeyman_score": 50 + n, "lifecyclestage": "lead"},
        **fields,
    }
    return CrmContact(**values)


def task_request(**fields: Any) -> CrmTaskRequest:
    values: dict[str, Any] = {
        "task_id": "task:c-1:lead_nurturing:notify_sales",
        "contact_id": "c-1",
        "crm_id": None,
        "email": "lead1@example.com",
        "owner_id": "7001",
        "subject": "Qualified lead: lead1@example.com",
        "body": "Score 57; downloaded the whitepaper, viewed pricing twice.",
        "due_at": DUE,
        **fields,
    }
    return CrmTaskRequest(**values)


def settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
