"""SMS through a Twilio-style API: `POST {api}/Accounts/{sid}/Messages.json`, basic auth.

The form fields are `To`, `From` and `Body`; the answer's JSON `sid` is the provider's id.
A contact is reached at `phone` in E.164 (`+` and up to 15 digits). Spaces, dots, dashes and
brackets are dropped first, so `+44 20 7946 0958` works; a national number without its country
code cannot be dialled from a provider and counts as no address.

Long texts are sent whole, never cut: a truncated link is worse than a two-part SMS. Above 160
characters the provider splits the text into segments, each billed (153 characters each in
GSM-7, 67 once a character such as an emoji forces UCS-2), so a warning names the template.
Above 1600 characters, which Twilio refuses (error 21617), the template fails before anything
is claimed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.base import Outgoing
from activities.channels.http import idempotency_headers, json_field, send
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact
from workflows.contracts import ERR_TEMPLATE, SendRequest

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_LAYOUT_CHARACTERS = str.maketrans("", "", " ().-")
SINGLE_SEGMENT = 160
MAX_LENGTH = 1600


@dataclass(frozen=True)
class SmsMessage:
    message_id: str
    to: str
    sender: str
    body: str


def e164(phone: str | None) -> str | None:
    """The number in E.164, or None if it is missing or not dialable as an E.164 number."""
    number = (phone or "").translate(_LAYOUT_CHARACTERS)
    return number if E164.fullmatch(number) else None


class SmsSender:
    channel = "sms"

    def __init__(
        self,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        renderer: TemplateRenderer,
        http: httpx.AsyncClient,
        timeout: float,
    ) -> None:
        self.messages_url = f"{api_url.rstrip('/')}/Accounts/{quote(account_sid)}/Messages.json"
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.sender = sender
        self.renderer = renderer
        self.http = http
        self.timeout = timeout

    @classmethod
    def from_settings(
        cls, settings: Settings, *, renderer: TemplateRenderer, http: httpx.AsyncClient
    ) -> SmsSender:
        return cls(
            api_url=settings.sms_api_url,
            account_sid=settings.sms_account_sid,
            auth_token=settings.sms_auth_token,
            sender=settings.sms_from,
            renderer=renderer,
            http=http,
            timeout=settings.provider_timeout_seconds,
        )

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        return e164(contact.phone)

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        to = self.address(contact, request)
        if to is None:
            raise ValueError(f"{contact.contact_id} has no E.164 phone number")
        body = self.renderer.render_sms(request.template, context)
        _check_length(request.template, body)
        message = SmsMessage(message_id=request.message_id, to=to, sender=self.sender, body=body)
        return Outgoing(channel=self.channel, to_address=to, subject=None, payload=message)

    async def deliver(self, outgoing: Outgoing) -> str | None:
        message = outgoing.payload
        if not isinstance(message, SmsMessage):
            raise TypeError(f"not an SMS: {type(message).__name__}")
        request = self.http.build_request(
            "POST",
            self.messages_url,
            data={"To": message.to, "From": message.sender, "Body": message.body},
            headers=idempotency_headers(message.message_id),
            timeout=self.timeout,
        )
        response = await send(self.http, request, provider="sms provider", auth=self.auth)
        sid = json_field(response, "sid")
        if sid is None:
            activity.logger.warning("SMS provider accepted %s without a sid", message.message_id)
        return sid


def _check_length(template: str, body: str) -> None:
    if len(body) > MAX_LENGTH:
        raise ApplicationError(
            f"template {template!r}: SMS of {len(body)} characters, providers refuse over "
            f"{MAX_LENGTH}",
            type=ERR_TEMPLATE,
            non_retryable=True,
        )
    if len(body) > SINGLE_SEGMENT:
        activity.logger.warning(
            "SMS from %r is %d characters: it goes out as several segments, each billed",
            template,
            len(body),
        )
