"""Realistic template contexts, as the journeys pass them (event properties as step context)."""

from __future__ import annotations

from typing import Any

from workflows.birthday import GIFT
from workflows.content import pick_content
from workflows.contracts import ContactSnapshot, Event
from workflows.reengagement import OFFER

CART: dict[str, Any] = {
    "cart_id": "cart-7",
    "items": [
        {"name": "Trail Runner 2", "quantity": 1, "price": 129.0},
        {"name": "Merino hiking socks", "quantity": 2, "price": "14.50"},
    ],
    "cart_url": "https://shop.example.com/cart/cart-7?utm_source=journeyman",
}
ORDER: dict[str, Any] = {
    "order_id": "A-1001",
    "items": [{"name": "Trail Runner 2", "quantity": 1, "price": 129.0}],
    "total": 129.0,
    "related_products": [
        {"name": "Waterproof gaiters", "url": "/products/gaiters"},
        {"name": "Trail running vest", "url": "https://shop.example.com/products/vest"},
    ],
}


def contact(**attributes: Any) -> ContactSnapshot:
    return ContactSnapshot(
        contact_id="c-42",
        exists=True,
        email="ada@example.com",
        locale="en-GB",
        timezone="Europe/London",
        attributes={"first_name": "Ada", **attributes},
    )


def event(name: str, properties: dict[str, Any]) -> Event:
    return Event(id=f"evt-{name}", contact_id="c-42", name=name, properties=properties)


# template -> (journey, step, trigger event, step context)
SCENARIOS: dict[str, tuple[str, str, Event | None, dict[str, Any]]] = {
    "welcome_series/welcome": ("welcome_series", "welcome", event("signed_up", {}), {}),
    "welcome_series/topic": (
        "welcome_series",
        "topic_1",
        event("signed_up", {}),
        {"number": 1, "pick": pick_content(["automation"], 0)},
    ),
    "abandoned_cart/reminder": (
        "abandoned_cart",
        "first_reminder",
        event("cart_abandoned", CART),
        CART,
    ),
    "abandoned_cart/last_chance": (
        "abandoned_cart",
        "second_reminder",
        event("cart_abandoned", CART),
        CART,
    ),
    "post_purchase/thank_you": ("post_purchase", "thank_you", event("order_placed", ORDER), ORDER),
    "post_purchase/review_request": (
        "post_purchase",
        "review_request",
        event("order_placed", ORDER),
        ORDER,
    ),
    # Scheduled journeys: enrolled from a segment, without an event.
    "reengagement/we_miss_you": ("reengagement", "we_miss_you", None, {"offer": OFFER}),
    "birthday/greeting": ("birthday", "greeting", None, {"gift": GIFT}),
}
