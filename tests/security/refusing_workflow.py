"""A workflow whose one activity fails the way providers do: quoting the address, the number
and a credential. In a module of its own, importing only what a workflow may, because the
workflow sandbox re-imports the module that defines a workflow."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

ADDRESS = "ada.zq+promo@example.com"
PHONE = "+15005550009"
SMTP_PASSWORD = "zqredactpassword4b1e"
SID = "AC0zqredact"
SMS_TOKEN = "zqredactsmstoken7f2a"
BASIC = base64.b64encode(f"{SID}:{SMS_TOKEN}".encode()).decode()
REFUSED = "SmtpRefused"


@dataclass(frozen=True)
class Refusal:
    contact_id: str


@dataclass(frozen=True)
class Refused:
    contact_id: str


@activity.defn(name="refuse_like_a_provider")
async def refuse_like_a_provider(request: Refusal) -> Refused:
    try:
        # The literal is on purpose: it puts the number in this frame's source line, so the
        # stack trace quotes it too.
        raise RuntimeError("21211 The 'To' number +15005550009 is not a valid phone number.")
    except RuntimeError as err:
        raise ApplicationError(
            f"550 5.1.1 <{ADDRESS}>: mailbox unknown (after AUTH PLAIN with {SMTP_PASSWORD}; "
            f"the SMS API saw Authorization: Basic {BASIC})",
            type=REFUSED,
            non_retryable=True,
        ) from err


@workflow.defn
class RefusedByProvider:
    @workflow.run
    async def run(self, request: Refusal) -> Refused:
        result: Refused = await workflow.execute_activity(
            refuse_like_a_provider,
            request,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return result
