"""Which connector the settings build."""

from __future__ import annotations

import httpx
import pytest

from activities.crm import HubSpotConnector, WebhookCrmConnector, build_crm_connector
from journeyman.settings import Settings


async def test_the_setting_picks_the_connector(http: httpx.AsyncClient) -> None:
    assert build_crm_connector(Settings(crm="none"), http) is None

    hubspot = build_crm_connector(
        Settings(
            crm="hubspot",
            hubspot_api_url="http://127.0.0.1:9/",
            hubspot_token=" pat-na1-x ",
            crm_batch_size=50,
        ),
        http,
    )
    assert isinstance(hubspot, HubSpotConnector)
    assert (hubspot.name, hubspot.max_batch, hubspot.token) == ("hubspot", 50, "pat-na1-x")
    assert hubspot.api_url == "http://127.0.0.1:9"

    webhook = build_crm_connector(
        Settings(crm="webhook", crm_webhook_url="https://crm.example.com/hook"), http
    )
    assert isinstance(webhook, WebhookCrmConnector)
    assert (webhook.name, webhook.max_batch, webhook.url) == (
        "webhook",
        100,
        "https://crm.example.com/hook",
    )


async def test_a_chosen_crm_without_credentials_fails_at_build(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="JOURNEYMAN_HUBSPOT_TOKEN"):
        build_crm_connector(Settings(crm="hubspot", hubspot_token=""), http)
    with pytest.raises(ValueError, match="JOURNEYMAN_CRM_WEBHOOK_URL"):
        build_crm_connector(Settings(crm="webhook", crm_webhook_url=" "), http)
