"""The content library the welcome series draws from: blog posts and webinars per topic.

Plain data and a pure function, so journeys can use it deterministically.
"""

from __future__ import annotations

from typing import Any

LIBRARY: dict[str, list[dict[str, str]]] = {
    "automation": [
        {
            "kind": "blog post",
            "title": "Five journeys every shop should run",
            "path": "/blog/five-journeys",
        },
        {"kind": "webinar", "title": "Automation without the spam", "path": "/webinars/no-spam"},
        {"kind": "blog post", "title": "Timing sends to local time", "path": "/blog/local-time"},
    ],
    "analytics": [
        {"kind": "blog post", "title": "Reading a journey funnel", "path": "/blog/funnels"},
        {"kind": "webinar", "title": "A/B tests that mean something", "path": "/webinars/ab-tests"},
        {"kind": "blog post", "title": "Attribution for humans", "path": "/blog/attribution"},
    ],
    "ecommerce": [
        {"kind": "blog post", "title": "Winning back abandoned carts", "path": "/blog/carts"},
        {
            "kind": "webinar",
            "title": "Post-purchase flows that earn reviews",
            "path": "/webinars/reviews",
        },
        {"kind": "blog post", "title": "Cross-sell without the creep", "path": "/blog/cross-sell"},
    ],
}
GENERAL: list[dict[str, str]] = [
    {
        "kind": "blog post",
        "title": "Getting started in ten minutes",
        "path": "/blog/getting-started",
    },
    {"kind": "webinar", "title": "Monthly product tour", "path": "/webinars/product-tour"},
    {"kind": "blog post", "title": "What our customers build", "path": "/blog/customers"},
]


def pick_content(interests: list[str], index: int) -> dict[str, Any]:
    """The `index`-th pick: rotate through the known interests, then through their items."""
    known = [topic for topic in interests if topic in LIBRARY]
    if not known:
        item = GENERAL[index % len(GENERAL)]
        return {"topic": "general", **item}
    topic = known[index % len(known)]
    items = LIBRARY[topic]
    item = items[(index // len(known)) % len(items)]
    return {"topic": topic, **item}
