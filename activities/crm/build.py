"""The configured CRM connector, or None when the CRM sync is off."""

from __future__ import annotations

import httpx

from activities.crm.base import CrmConnector
from activities.crm.hubspot import HubSpotConnector
from activities.crm.webhook import WebhookCrmConnector
from journeyman.settings import Settings


def build_crm_connector(settings: Settings, http: httpx.AsyncClient) -> CrmConnector | None:
    """`JOURNEYMAN_CRM`: "none" -> None, "hubspot" or "webhook" -> its connector.

    Raises ValueError when the chosen CRM lacks what it needs (a token, a URL), so a worker
    fails at start rather than at its first sync.
    """
    if settings.crm == "hubspot":
        return HubSpotConnector.from_settings(settings, http=http)
    if settings.crm == "webhook":
        return WebhookCrmConnector.from_settings(settings, http=http)
    return None
