"""What the send activity hands an adapter, built the way it builds them."""

from __future__ import annotations

from typing import Any

from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact
from workflows.contracts import ContactSnapshot, Event, SendRequest

from ..activities.samples import CART, ORDER

SID = "AC0123456789abcdef"
SMS_TOKEN = "sms-secret-token"
PUSH_TOKEN = "push-secret-token"
WEBHOOK_SECRET = "whsec-0123456789"
DEVICE_TOKEN = "fcm:dEvIcE-tOkEn-42"
MESSAGE_ID = "journey:abandoned_cart:c-42:cart-7:run-1:second_reminder"

# channel -> (journey, step, template, step context)
SCENARIOS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "sms": ("abandoned_cart", "second_reminder", "abandoned_cart/last_chance", CART),
    "push": ("post_purchase", "thank_you", "post_purchase/thank_you", ORDER),
    "webhook": ("post_purchase", "notify_crm", "", {"payload": {"order_id": "A-1001"}}),
}


def settings_for(url: str, **overrides: Any) -> Settings:
    """Settings with every HTTP provider at `url` (a fake provider's base URL)."""
    values: dict[str, Any] = {
        "public_url": "https://shop.example.com",
        "email_from": "Acme Outfitters <hello@shop.example.com>",
        "sms_api_url": f"{url}/2010-04-01",
        "sms_account_sid": SID,
        "sms_auth_token": SMS_TOKEN,
        "sms_from": "+15005550006",
        "push_api_url": f"{url}/v1/push",
        "push_api_token": PUSH_TOKEN,
        "webhook_url": f"{url}/hooks/journeyman",
        "webhook_secret": WEBHOOK_SECRET,
        "provider_timeout_seconds": 5.0,
        **overrides,
    }
    return Settings(**values)


def contact(**fields: Any) -> Contact:
    values: dict[str, Any] = {
        "contact_id": "c-42",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0958",
        "timezone": "Europe/London",
        "locale": "en-GB",
        "attributes": {"first_name": "Ada", "push_token": DEVICE_TOKEN},
        **fields,
    }
    return Contact(**values)


def send_request(channel: str, **overrides: Any) -> SendRequest:
    journey, step, template, step_context = SCENARIOS[channel]
    trigger_name = "cart_abandoned" if journey == "abandoned_cart" else "order_placed"
    values: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "workflow_id": "journey:abandoned_cart:c-42:cart-7",
        "run_id": "run-1",
        "journey": journey,
        "version": 2,
        "step": step,
        "contact_id": "c-42",
        "channel": channel,
        "template": template,
        "context": dict(step_context),
        "trigger": Event(id="evt-1", contact_id="c-42", name=trigger_name, properties=step_context),
        **overrides,
    }
    return SendRequest(**values)


def template_context(
    renderer: TemplateRenderer, request: SendRequest, who: Contact
) -> dict[str, Any]:
    """The context the send activity renders with: the contact, the trigger, the step's own."""
    snapshot = ContactSnapshot(
        contact_id=who.contact_id,
        exists=True,
        email=who.email,
        phone=who.phone,
        timezone=who.timezone,
        locale=who.locale,
        attributes=dict(who.attributes),
    )
    return renderer.context(
        contact=snapshot,
        event=request.trigger,
        journey=request.journey,
        step=request.step,
        step_context=request.context,
    )
