"""CRM connectors: HubSpot and a generic signed webhook, behind one interface (`base.py`)."""

from activities.crm.base import (
    CrmConnector,
    CrmContact,
    CrmError,
    CrmRateLimited,
    CrmRejected,
    CrmTaskRequest,
    CrmUnavailable,
    InboundChange,
    InvalidInboundPayload,
    PropertyValue,
    UpsertOutcome,
)
from activities.crm.build import build_crm_connector
from activities.crm.hubspot import (
    REQUEST_TIMESTAMP_HEADER,
    SIGNATURE_V3_HEADER,
    HubSpotConnector,
    parse_hubspot_webhook,
    verify_hubspot_signature_v3,
)
from activities.crm.webhook import (
    WebhookCrmConnector,
    parse_generic_webhook,
    verify_generic_webhook,
)

__all__ = [
    "REQUEST_TIMESTAMP_HEADER",
    "SIGNATURE_V3_HEADER",
    "CrmConnector",
    "CrmContact",
    "CrmError",
    "CrmRateLimited",
    "CrmRejected",
    "CrmTaskRequest",
    "CrmUnavailable",
    "HubSpotConnector",
    "InboundChange",
    "InvalidInboundPayload",
    "PropertyValue",
    "UpsertOutcome",
    "WebhookCrmConnector",
    "build_crm_connector",
    "parse_generic_webhook",
    "parse_hubspot_webhook",
    "verify_generic_webhook",
    "verify_hubspot_signature_v3",
]
