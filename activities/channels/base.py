"""The shape every channel adapter has, so the send activity treats them alike.

The send activity owns the policy (consent, quiet hours, caps, claim-before-send); an adapter
only knows its channel: where a contact is reached, what the message looks like, and how the
provider is called. Adapters raise:
- `ApplicationError(type=ERR_PERMANENT_SEND, non_retryable=True)` when the provider refuses
  for good (4xx such as an invalid number): recorded `failed`, the journey goes on;
- `ApplicationError(..., next_retry_delay=...)` when the provider asks to wait (429 with
  Retry-After): Temporal retries after that delay;
- `DeliveryUncertainError` when the message may have been handed over (connection lost after
  the request was sent): recorded `failed: uncertain_delivery`, never resent;
- anything else (connection refused, 5xx): retried with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from persistence import Contact
from workflows.contracts import SendRequest


@dataclass(frozen=True)
class Outgoing:
    """A message ready for its provider; built before the claim, so bad input claims nothing."""

    channel: str
    to_address: str
    # Email subject or push title; None for SMS and webhooks.
    subject: str | None
    # What the provider receives: an EmailMessage, a JSON-able dict, form fields...
    payload: Any
    # Known before the call for email (our Message-ID); else the provider's answer.
    provider_message_id: str | None = None


class ChannelSender(Protocol):
    channel: str

    def address(self, contact: Contact, request: SendRequest) -> str | None:
        """Where this contact is reached on this channel; None means "no address"."""
        ...

    def compose(self, request: SendRequest, contact: Contact, context: dict[str, Any]) -> Outgoing:
        """Render the message (raises ApplicationError(ERR_TEMPLATE) for template errors)."""
        ...

    async def deliver(self, outgoing: Outgoing) -> str | None:
        """Hand the message to the provider; returns the provider's message id if it has one."""
        ...
