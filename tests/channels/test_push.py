"""Push against a JSON API that checks the bearer token and the body's shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.channels import ERR_PROVIDER_AUTH, PushSender
from activities.rendering import TemplateRenderer

from .conftest import Serve
from .helpers import (
    DEVICE_TOKEN,
    MESSAGE_ID,
    PUSH_TOKEN,
    contact,
    send_request,
    settings_for,
    template_context,
)
from .provider import FakeProvider, Received, Reply

PUSH_ID = "push-7f3a"


def push_api(received: Received) -> Reply:
    if received.path != "/v1/push":
        return Reply(404, {"error": "no such endpoint"})
    if received.headers.get("Authorization") != f"Bearer {PUSH_TOKEN}":
        return Reply(401, {"error": {"code": "unauthenticated", "message": "bad token"}})
    if received.headers.get("Content-Type") != "application/json":
        return Reply(415, {"error": "JSON only"})
    body = received.json()
    if set(body) != {"to", "title", "body", "data"} or not all(
        isinstance(body[key], str) and body[key] for key in ("to", "title", "body")
    ):
        return Reply(400, {"error": "to, title, body and data are required"})
    return Reply(200, {"id": PUSH_ID})


def push_sender(
    provider: FakeProvider, http: httpx.AsyncClient, renderer: TemplateRenderer, **settings: Any
) -> PushSender:
    return PushSender.from_settings(
        settings_for(provider.url, **settings), renderer=renderer, http=http
    )


@pytest.fixture
def sender(http: httpx.AsyncClient, renderer: TemplateRenderer) -> PushSender:
    return PushSender.from_settings(
        settings_for("http://unused.invalid"), renderer=renderer, http=http
    )


@pytest.mark.parametrize(
    ("attributes", "address"),
    [
        ({"push_token": DEVICE_TOKEN}, DEVICE_TOKEN),
        ({"push_token": f"  {DEVICE_TOKEN}\n"}, DEVICE_TOKEN),
        ({}, None),
        ({"push_token": ""}, None),
        ({"push_token": "   "}, None),
        ({"push_token": None}, None),
        ({"push_token": ["a", "b"]}, None),
    ],
)
def test_address_is_the_push_token_attribute(
    sender: PushSender, attributes: dict[str, Any], address: str | None
) -> None:
    assert sender.address(contact(attributes=attributes), send_request("push")) == address


async def test_push_is_posted_as_json_with_a_bearer_token(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(push_api)
    sender = push_sender(provider, http, renderer)
    request = send_request("push")
    who = contact()

    outgoing = sender.compose(request, who, template_context(renderer, request, who))
    provider_id = await sender.deliver(outgoing)

    assert provider_id == PUSH_ID
    assert outgoing.to_address == DEVICE_TOKEN
    assert outgoing.subject == "Thank you for your order A-1001"
    received = provider.last
    assert received.json() == {
        "to": DEVICE_TOKEN,
        "title": "Thank you for your order A-1001",
        "body": (
            "Your Trail Runner 2 will be on the way soon. Thank you for shopping with "
            "Acme Outfitters."
        ),
        "data": {"message_id": MESSAGE_ID, "journey": "post_purchase", "step": "thank_you"},
    }
    assert received.headers["Idempotency-Key"] == MESSAGE_ID
    assert received.headers["X-Journeyman-Message-Id"] == MESSAGE_ID


async def test_a_rejected_token_is_retried(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(push_api)
    sender = push_sender(provider, http, renderer, push_api_token="expired")
    request = send_request("push")
    who = contact()
    outgoing = sender.compose(request, who, template_context(renderer, request, who))

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_AUTH and not err.value.non_retryable
    assert err.value.message == "push provider 401: unauthenticated bad token"


async def test_accepted_without_an_id_is_still_sent(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: Reply(202, {"status": "queued"}))
    sender = push_sender(provider, http, renderer)
    request = send_request("push")
    who = contact()

    outgoing = sender.compose(request, who, template_context(renderer, request, who))

    assert await sender.deliver(outgoing) is None


def test_composing_for_a_contact_without_a_token_is_refused(
    sender: PushSender, renderer: TemplateRenderer
) -> None:
    request = send_request("push")
    who = contact(attributes={"first_name": "Ada"})

    with pytest.raises(ValueError, match="no push token"):
        sender.compose(request, who, template_context(renderer, request, who))
