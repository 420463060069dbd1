"""One call to an HTTP provider (SMS, push, webhook), its answer sorted by what a retry changes.

The rules every HTTP adapter follows (see `base.py` for what the send activity does with them):
- 2xx: accepted. Nothing after this point may raise, or a retry would find the message
  claimed and record it uncertain although it went out.
- 429, and 5xx with `Retry-After`: retryable, with Temporal's next attempt no sooner than the
  provider asked (`next_retry_delay`).
- 5xx, 408 (the provider gave up waiting for our request), connect errors and timeouts before
  the request was written: retryable with the policy's backoff.
- 401 and 403: retryable too, like SMTP authentication failures: the credentials are ours, an
  operator can fix them within the retry window, and failing every message for good while the
  token is being rotated would lose them all. They show in the Temporal UI as pending retries.
- any other 4xx (and 3xx, since a redirected POST is not followed): the provider refused this
  message, `ERR_PERMANENT_SEND` with its own words, e.g. Twilio's `21211 The 'To' number ...`.
- the connection broke or timed out while we waited for the answer: the provider may have the
  message, so `DeliveryUncertainError` and never a resend. That includes a server that closed
  the connection the moment it read the request, and, rarely, a pooled keep-alive connection
  the server closed as we reused it; never sending twice is worth that occasional false alarm.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
from temporalio.exceptions import ApplicationError

from activities.email import MESSAGE_ID_HEADER, DeliveryUncertainError
from workflows.contracts import ERR_PERMANENT_SEND

# Retryable ApplicationError types; the workflow's retry policy needs no list of them.
ERR_PROVIDER_THROTTLED = "ProviderThrottled"
ERR_PROVIDER_UNAVAILABLE = "ProviderUnavailable"
ERR_PROVIDER_AUTH = "ProviderAuthRejected"

IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_CLIENT_ERRORS = frozenset({408})
AUTH_ERRORS = frozenset({401, 403})
# Enough of the provider's answer to say what was wrong; the message log keeps 200 characters.
DETAIL_MAX = 300
# Printable ASCII but `%` passes into a header as is; everything else is percent-encoded.
_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def idempotency_headers(message_id: str) -> dict[str, str]:
    """Headers that let a provider or receiver de-duplicate a message it may see twice.

    Ids may hold any character but whitespace (contact ids and keys come from the backend);
    a header must be ASCII, so others are percent-encoded and ASCII ids arrive unchanged.
    """
    value = quote(message_id, safe=_HEADER_SAFE)
    return {IDEMPOTENCY_HEADER: value, MESSAGE_ID_HEADER: value}


async def send(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    provider: str,
    auth: httpx.Auth | None = None,
) -> httpx.Response:
    """Make the call; returns the 2xx response, raises as the module docstring says."""
    try:
        response = await http.send(request, auth=auth)
    except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError) as err:
        # httpx reads the answer only once the request is written (it even reads after a
        # failed write, for servers that answer early), so these mean "it may have arrived".
        raise DeliveryUncertainError(
            f"{provider}: connection lost while waiting for the answer: {type(err).__name__}: {err}"
        ) from err
    raise_for_status(response, provider=provider)
    return response


def raise_for_status(response: httpx.Response, *, provider: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    what = f"{provider} {status}: {provider_error(response)}"
    delay = retry_after(response.headers.get("Retry-After"), now=datetime.now(UTC))
    if status == 429:
        raise ApplicationError(
            what, type=ERR_PROVIDER_THROTTLED, non_retryable=False, next_retry_delay=delay
        )
    if status >= 500 or status in RETRYABLE_CLIENT_ERRORS:
        raise ApplicationError(
            what, type=ERR_PROVIDER_UNAVAILABLE, non_retryable=False, next_retry_delay=delay
        )
    if status in AUTH_ERRORS:
        raise ApplicationError(what, type=ERR_PROVIDER_AUTH, non_retryable=False)
    raise ApplicationError(what, type=ERR_PERMANENT_SEND, non_retryable=True)


def retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """`Retry-After` as a delay: delta-seconds or an HTTP-date; None if absent, bad or past."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        delay = timedelta(seconds=int(text))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        delay = when - now
    # Zero or a past date says "now": leave the pace to the retry policy's backoff instead.
    return delay if delay > timedelta(0) else None


def provider_error(response: httpx.Response) -> str:
    """The provider's own words: a JSON `code` and `message` (Twilio) or `error`, else the text."""
    body = _json(response)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, dict):  # {"error": {"code": ..., "message": ...}}
            body, message = message, message.get("message")
        parts = [str(part) for part in (body.get("code"), message) if part not in (None, "")]
        if parts:
            return " ".join(parts)[:DETAIL_MAX]
    text = " ".join(response.text.split())
    return text[:DETAIL_MAX] or response.reason_phrase


def json_field(response: httpx.Response, name: str) -> str | None:
    """One field of a JSON answer, such as the provider's message id; None if it has none."""
    body = _json(response)
    value = body.get(name) if isinstance(body, dict) else None
    return str(value) if value not in (None, "") else None


def _json(response: httpx.Response) -> object:
    try:
        body: object = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return None
    return body
