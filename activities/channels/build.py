"""The HTTP channel adapters, built once by the worker around one shared HTTP client."""

from __future__ import annotations

import httpx

from activities.channels.base import ChannelSender
from activities.channels.push import PushSender
from activities.channels.sms import SmsSender
from activities.channels.webhook import WebhookSender
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings


def build_channel_senders(
    settings: Settings, renderer: TemplateRenderer, http: httpx.AsyncClient
) -> dict[str, ChannelSender]:
    """`sms`, `push` and `webhook` senders by channel name; the caller owns (and closes) `http`."""
    senders: list[ChannelSender] = [
        SmsSender.from_settings(settings, renderer=renderer, http=http),
        PushSender.from_settings(settings, renderer=renderer, http=http),
        WebhookSender.from_settings(settings, http=http),
    ]
    return {sender.channel: sender for sender in senders}
