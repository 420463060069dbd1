"""One adapter per channel: how to address a contact, compose a message and hand it over."""

from activities.channels.base import ChannelSender, Outgoing
from activities.channels.build import build_channel_senders
from activities.channels.http import (
    ERR_PROVIDER_AUTH,
    ERR_PROVIDER_THROTTLED,
    ERR_PROVIDER_UNAVAILABLE,
)
from activities.channels.push import PushSender
from activities.channels.sms import SmsSender
from activities.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    sign_webhook,
    verify_webhook_signature,
)

__all__ = [
    "ERR_PROVIDER_AUTH",
    "ERR_PROVIDER_THROTTLED",
    "ERR_PROVIDER_UNAVAILABLE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ChannelSender",
    "Outgoing",
    "PushSender",
    "SmsSender",
    "WebhookSender",
    "build_channel_senders",
    "sign_webhook",
    "verify_webhook_signature",
]
