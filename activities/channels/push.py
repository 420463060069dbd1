"""Push notifications through a generic JSON API: `POST {push_api_url}` with a bearer token.

The body is `{"to": <device token>, "title", "body", "data": {"message_id", "journey", "step"}}`;
`data` lets the app report opens against the message. The device token is the contact's
`push_token` attribute, which the backend sets when the app registers for notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from temporalio import activity

from activities.channels.base import Outgoing
from activities.channels.http import idempotency_headers, json_field, send
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact
from workflows.contracts import SendRequest

PUSH_TOKEN_ATTRIBUTE = "push_token"


@dataclass(frozen=True)
class PushMessage:
    message_id: str
    # The JSON body the push API receives.
    body: dict[str, Any]


def push_token(contact: Contact) -> str | None:
    token = (contact.attributes or {}).get(PUSH_TOKEN_ATTRIBUTE)
    if not isinstance(token, str):
        return None
    return token.strip() or None


class PushSender:
    channel = "push"

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str,
        renderer: TemplateRenderer,
        http: httpx.AsyncClient,
        timeout: float,
    ) -> None:
        self.api_url = api_url
        self.api_token = api_token
        self.renderer = renderer
        self.http = http
        self.timeout = timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, *, renderer: TemplateRenderer, http: httpx.AsyncClient
    ) -> PushSender:
        return cls(
            api_url=settings.push_api_url,
            api_token=settings.push_api_token,
            renderer=renderer,
            http=http,
            timeout=settings.provider_timeout_seconds,
        )

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        return push_token(contact)

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        token = self.address(contact, request)
        if token is None:
            raise ValueError(f"{contact.contact_id} has no push token")
        rendered = self.renderer.render_push(request.template, context)
        body = {
            "to": token,
            "title": rendered.title,
            "body": rendered.body,
            "data": {
                "message_id": request.message_id,
                "journey": request.journey,
                "step": request.step,
            },
        }
        return Outgoing(
            channel=self.channel,
            to_address=token,
            subject=rendered.title,
            payload=PushMessage(message_id=request.message_id, body=body),
        )

    async def deliver(self, outgoing: Outgoing) -> str | None:
        message = outgoing.payload
        if not isinstance(message, PushMessage):
            raise TypeError(f"not a push notification: {type(message).__name__}")
        request = self.http.build_request(
            "POST",
            self.api_url,
            json=message.body,
            headers={
                "Authorization": f"Bearer {self.api_token}",
                **idempotency_headers(message.message_id),
            },
            timeout=self.timeout,
        )
        response = await send(self.http, request, provider="push provider")
        provider_id = json_field(response, "id")
        if provider_id is None:
            activity.logger.warning("Push API accepted %s without an id", message.message_id)
        return provider_id
