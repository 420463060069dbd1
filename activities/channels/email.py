"""The email adapter: the contact's address, a multipart message from the templates, SMTP.

The send activity decides whether a message may go out; this adapter only builds and hands
it over. A marketing email's template context carries `unsubscribe_url` (the activity puts it
there), and the same link becomes the RFC 8058 one-click headers, so the footer link and the
inbox's unsubscribe button always agree; a transactional email has neither.

Every email, marketing and transactional alike, is tracked (`activities.tracking`): its HTML
links become signed click URLs and it gets an open pixel. Receipts are tracked too, because
"did they open the receipt" is a fair question and the journey may wait for a click on it;
the unsubscribe link is never rewritten. The links behind the click URLs travel on the
`TrackedOutgoing`, and the send activity stores them on the message row it claims.
"""

from __future__ import annotations

from typing import Any

from activities.channels.base import Outgoing
from activities.email import Mailer, build_email, sender_domain
from activities.rendering import RenderedEmail, TemplateRenderer
from activities.tracking import TrackedOutgoing, track_html
from journeyman.settings import Settings
from journeyman.signing import Signer
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
        self.public_url = settings.public_url
        self.signer = Signer(settings.secret_key)

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        return (contact.email or "").strip() or None

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        """Raises ValueError when the address cannot be a header (say, it holds a newline)."""
        address = self.address(contact, request) or ""
        rendered = self.renderer.render_email(request.template, context)
        link = context.get(UNSUBSCRIBE_URL)
        tracked = track_html(
            rendered.html,
            message_id=request.message_id,
            public_url=self.public_url,
            signer=self.signer,
            keep=frozenset({str(link)}) if link else frozenset(),
        )
        rendered = RenderedEmail(subject=rendered.subject, text=rendered.text, html=tracked.html)
        message = build_email(
            message_id=request.message_id,
            sender=self.sender,
            recipient=address,
            rendered=rendered,
            domain=self.domain,
            unsubscribe_url=str(link) if link else None,
        )
        return TrackedOutgoing(
            channel=self.channel,
            to_address=address,
            subject=rendered.subject,
            payload=message,
            provider_message_id=str(message["Message-ID"]),
            links=tuple(tracked.links),
        )

    async def deliver(self, outgoing: Outgoing) -> str | None:
        await self.mailer.send(outgoing.payload)
        return outgoing.provider_message_id
