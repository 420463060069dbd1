"""A workflow that makes one send (and one other activity call), for the latency tests."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        READ_CONTACT,
        SEND_MESSAGE,
        ContactRequest,
        ContactSnapshot,
        SendRequest,
        SendResult,
    )


@workflow.defn
class OneSend:
    @workflow.run
    async def run(self, request: SendRequest) -> str:
        once = RetryPolicy(maximum_attempts=1)
        await workflow.execute_activity(
            READ_CONTACT,
            ContactRequest(contact_id=request.contact_id),
            result_type=ContactSnapshot,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=once,
        )
        try:
            result = await workflow.execute_activity(
                SEND_MESSAGE,
                request,
                result_type=SendResult,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=once,
            )
        except ActivityError:
            return "error"
        status: str = result.status
        return status
