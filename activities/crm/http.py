"""One HTTP call to a CRM, its answer sorted into the errors of `base.py`.

- 2xx: returned to the connector, which reads the body.
- 429: `CrmRateLimited`, `retry_after` from the `Retry-After` header (delta-seconds or an
  HTTP-date), else `DEFAULT_RETRY_AFTER`: HubSpot does not always send the header, and its burst
  limit is counted over ten seconds.
- 5xx, 408, a refused connection, a timeout or a connection lost mid-call: `CrmUnavailable`.
  Contact upserts are idempotent, so retrying a call that may have arrived is harmless; a task
  create retried after a lost answer can create the task twice (CRMs offer no idempotency key
  for it), which beats losing the sales notification.
- 401 and 403: `CrmUnavailable` too. The token is ours: an operator can fix or re-scope it
  within the retry window, and failing every contact for good while it is rotated would drop
  the sync for them all.
- Any other status (4xx, or a 3xx: a redirected POST is not followed): `CrmRejected` with the
  CRM's own words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from activities.channels.http import retry_after
from activities.crm.base import CrmRateLimited, CrmRejected, CrmUnavailable

DEFAULT_RETRY_AFTER = 10.0
AUTH_ERRORS = frozenset({401, 403})
# Enough of the CRM's answer to say what was wrong.
DETAIL_MAX = 300


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    time_limit: float,
    crm: str,
) -> httpx.Response:
    """POST `content` (JSON bytes) and return the 2xx answer; raise as the docstring says."""
    try:
        response = await http.post(
            url,
            content=content,
            headers={"Content-Type": "application/json", **headers},
            timeout=time_limit,
        )
    except httpx.TransportError as err:  # connect, timeouts, dropped connections
        raise CrmUnavailable(f"{crm}: {type(err).__name__}: {err}") from err
    raise_for_crm_status(response, crm=crm)
    return response


def raise_for_crm_status(response: httpx.Response, *, crm: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    what = f"{crm} {status}: {crm_error_text(response)}"
    if status == 429:
        delay = retry_after(response.headers.get("Retry-After"), now=datetime.now(UTC))
        seconds = delay.total_seconds() if delay is not None else DEFAULT_RETRY_AFTER
        raise CrmRateLimited(what, retry_after=seconds)
    if status >= 500 or status == 408:
        raise CrmUnavailable(what)
    if status in AUTH_ERRORS:
        raise CrmUnavailable(f"{what} (check the CRM token and its scopes)")
    raise CrmRejected(what)


def crm_error_text(response: httpx.Response) -> str:
    """The CRM's words: HubSpot's `category`/`errorType` and `message`, else the text."""
    body = json_body(response)
    if isinstance(body, dict):
        kind = body.get("category") or body.get("errorType") or body.get("code")
        message = body.get("message") or body.get("error") or body.get("detail")
        parts = [str(part) for part in (kind, message) if part not in (None, "")]
        if parts:
            return ": ".join(parts)[:DETAIL_MAX]
    text = " ".join(response.text.split())
    return text[:DETAIL_MAX] or response.reason_phrase


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it has none (an empty 2xx, HTML from a proxy)."""
    try:
        return response.json()
    except ValueError:
        return None
