"""Every HTTP adapter sorts a provider's answer the same way, against a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.channels import (
    ERR_PROVIDER_THROTTLED,
    ERR_PROVIDER_UNAVAILABLE,
    ChannelSender,
    Outgoing,
    build_channel_senders,
)
from activities.channels.http import idempotency_headers, provider_error, retry_after
from activities.email import DeliveryUncertainError
from activities.rendering import TemplateRenderer
from tests.activities.conftest import closed_port
from workflows.contracts import ERR_PERMANENT_SEND

from .conftest import Serve
from .helpers import contact, send_request, settings_for, template_context
from .provider import DROP, HANG, Reply

CHANNELS = ["sms", "push", "webhook"]
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def ready(
    channel: str,
    url: str,
    http: httpx.AsyncClient,
    renderer: TemplateRenderer,
    *,
    message_id: str | None = None,
    **settings: Any,
) -> tuple[ChannelSender, Outgoing]:
    """The worker's sender for `channel`, pointed at `url`, and a message composed with it."""
    sender = build_channel_senders(settings_for(url, **settings), renderer, http)[channel]
    request = send_request(channel, **({"message_id": message_id} if message_id else {}))
    who = contact()
    return sender, sender.compose(request, who, template_context(renderer, request, who))


def test_the_worker_gets_one_sender_per_http_channel(
    http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    senders = build_channel_senders(settings_for("http://unused.invalid"), renderer, http)

    assert {name: sender.channel for name, sender in senders.items()} == {
        "sms": "sms",
        "push": "push",
        "webhook": "webhook",
    }


@pytest.mark.parametrize("channel", CHANNELS)
async def test_throttled_waits_as_long_as_retry_after_says(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer, channel: str
) -> None:
    provider = serve(
        lambda received: Reply(
            429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "7"}
        )
    )
    sender, outgoing = ready(channel, provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_THROTTLED
    assert not err.value.non_retryable
    assert err.value.next_retry_delay == timedelta(seconds=7)
    assert "429: 20429 Too Many Requests" in err.value.message


async def test_retry_after_may_be_an_http_date(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    until = datetime.now(UTC) + timedelta(minutes=2)
    provider = serve(
        lambda received: Reply(
            429, b"slow down", {"Retry-After": format_datetime(until, usegmt=True)}
        )
    )
    sender, outgoing = ready("sms", provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    delay = err.value.next_retry_delay
    assert delay is not None
    assert timedelta(seconds=100) < delay <= timedelta(minutes=2)


async def test_throttled_without_retry_after_leaves_the_pace_to_the_retry_policy(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: Reply(429, b"slow down"))
    sender, outgoing = ready("push", provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_THROTTLED and not err.value.non_retryable
    assert err.value.next_retry_delay is None


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retried_with_backoff(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer, channel: str, status: int
) -> None:
    provider = serve(lambda received: Reply(status, b"<html>upstream trouble</html>"))
    sender, outgoing = ready(channel, provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_UNAVAILABLE
    assert not err.value.non_retryable
    assert err.value.next_retry_delay is None
    assert err.value.message.endswith(f"{status}: <html>upstream trouble</html>")


async def test_unavailable_with_retry_after_waits_that_long(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: Reply(503, b"maintenance", {"Retry-After": "30"}))
    sender, outgoing = ready("webhook", provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PROVIDER_UNAVAILABLE
    assert err.value.next_retry_delay == timedelta(seconds=30)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(400, {"code": 21211, "message": "invalid 'To'"}), "400: 21211 invalid 'To'"),
        (Reply(404, b"Not Found\n"), "404: Not Found"),
        (Reply(410, {"error": "token unregistered"}), "410: token unregistered"),
        (Reply(422, b""), "422: Unprocessable Entity"),
        # A redirected POST is not followed: the configured URL is wrong.
        (Reply(301, b"", {"Location": "https://elsewhere.example/"}), "301: Moved Permanently"),
    ],
)
async def test_refusals_fail_for_good_with_the_providers_words(
    serve: Serve,
    http: httpx.AsyncClient,
    renderer: TemplateRenderer,
    channel: str,
    reply: Reply,
    detail: str,
) -> None:
    provider = serve(lambda received: reply)
    sender, outgoing = ready(channel, provider.url, http, renderer)

    with pytest.raises(ApplicationError) as err:
        await sender.deliver(outgoing)

    assert err.value.type == ERR_PERMANENT_SEND
    assert err.value.non_retryable
    assert err.value.message.endswith(detail)
    assert len(provider.received) == 1


@pytest.mark.parametrize("channel", CHANNELS)
async def test_connection_dropped_after_the_request_is_uncertain(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer, channel: str
) -> None:
    provider = serve(lambda received: DROP)
    sender, outgoing = ready(channel, provider.url, http, renderer)

    with pytest.raises(DeliveryUncertainError, match="connection lost"):
        await sender.deliver(outgoing)

    assert len(provider.received) == 1  # the provider had the whole request


async def test_no_answer_within_the_timeout_is_uncertain(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: HANG)
    sender, outgoing = ready("push", provider.url, http, renderer, provider_timeout_seconds=0.2)

    with pytest.raises(DeliveryUncertainError, match="ReadTimeout"):
        await sender.deliver(outgoing)

    assert len(provider.received) == 1


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_provider_that_cannot_be_reached_is_retried(
    http: httpx.AsyncClient, renderer: TemplateRenderer, channel: str
) -> None:
    sender, outgoing = ready(channel, f"http://127.0.0.1:{closed_port()}", http, renderer)

    # Nothing was sent: a plain exception, which Temporal retries, never "uncertain".
    with pytest.raises(httpx.ConnectError):
        await sender.deliver(outgoing)


async def test_any_message_id_travels_as_a_header(
    serve: Serve, http: httpx.AsyncClient, renderer: TemplateRenderer
) -> None:
    provider = serve(lambda received: Reply(201, {"sid": "SM1"}))
    message_id = "journey:abandoned_cart:józef:cart-100%:run-1:second_reminder"
    sender, outgoing = ready("sms", provider.url, http, renderer, message_id=message_id)

    await sender.deliver(outgoing)

    encoded = "journey:abandoned_cart:j%C3%B3zef:cart-100%25:run-1:second_reminder"
    assert provider.last.headers["Idempotency-Key"] == encoded
    assert provider.last.headers["X-Journeyman-Message-Id"] == encoded


def test_ascii_message_ids_are_sent_unchanged() -> None:
    message_id = "journey:welcome_series:c-42:run-1:topic_1/a+b=c"

    assert idempotency_headers(message_id) == {
        "Idempotency-Key": message_id,
        "X-Journeyman-Message-Id": message_id,
    }


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        ("120", timedelta(minutes=2)),
        ("  5 ", timedelta(seconds=5)),
        ("Sun, 01 Mar 2026 09:31:00 GMT", timedelta(minutes=1)),
        ("Sun, 01 Mar 2026 09:31:00 -0000", timedelta(minutes=1)),
        ("0", None),
        ("Sun, 01 Mar 2026 09:00:00 GMT", None),  # already past
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(value: str | None, delay: timedelta | None) -> None:
    assert retry_after(value, now=NOW) == delay


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"code": 21211, "message": "bad number"}', "21211 bad number"),
        (b'{"error": {"code": "quota", "message": "over quota"}}', "quota over quota"),
        (b'{"detail": "no such device"}', "no such device"),
        (b'{"unexpected": true}', '{"unexpected": true}'),
        (b"plain\n  words", "plain words"),
        (b"x" * 1000, "x" * 300),
        (b"", "Bad Request"),
        (b"\xff\xfe", "\ufffd\ufffd"),
    ],
)
def test_provider_error_in_the_providers_words(body: bytes, detail: str) -> None:
    response = httpx.Response(400, content=body)

    assert provider_error(response) == detail
