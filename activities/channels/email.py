"""The email adapter: the contact's address, a multipart message from the templates, SMTP.

The send activity decides whether a message may go out; this adapter only builds and hands
it over. A marketing email's template context carries `unsubscribe_url` (the activity puts it
there), and the same link becomes the RFC 8058 one-click headers, so the footer link and the
inbox's unsubscribe button always agree; a transactional email has neither.
"""

from __future__ import annotations

from typing import Any

from activities.channels.base import Outgoing
from activities.email import Mailer, build_email, sender_domain
from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact
from workflows.contracts import SendRequest

UNSUBSCRIBE_URL = "unsubscribe_url"


class EmailSender:
    channel = "email"

    def __init__(self, *, settings: Settings, renderer: TemplateRenderer, mailer: Mailer) -> None:
        self.sender = settings.email_from
        self.domain = sender_domain(settings.email_from)
        self.renderer = renderer
        self.mailer = mailer

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        return (contact.email or "").strip() or None

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        """Raises ValueError when the address cannot be a header (say, it holds a newline)."""
        address = self.address(contact, request) or ""
        rendered = self.renderer.render_email(request.template, context)
        link = context.get(UNSUBSCRIBE_URL)
        message = build_email(
            message_id=request.message_id,
            sender=self.sender,
            recipient=address,
            rendered=rendered,
            domain=self.domain,
            unsubscribe_url=str(link) if link else None,
        )
        return Outgoing(
            channel=self.channel,
            to_address=address,
            subject=rendered.subject,
            payload=message,
            provider_message_id=str(message["Message-ID"]),
        )

    async def deliver(self, outgoing: Outgoing) -> str | None:
        await self.mailer.send(outgoing.payload)
        return outgoing.provider_message_id
