"""A workflow that sends one message a month after it starts, to run sends in skipped time."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import SEND_MESSAGE, SendRequest, SendResult

# Not whole days: the time of day must differ from the wall clock's too.
DELAY = timedelta(days=30, hours=6)


@workflow.defn
class SendLater:
    @workflow.run
    async def run(self, request: SendRequest) -> SendResult:
        await workflow.sleep(DELAY)
        result: SendResult = await workflow.execute_activity(
            SEND_MESSAGE,
            request,
            result_type=SendResult,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result
