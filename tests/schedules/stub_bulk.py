"""A stand-in for the bulk enrollment workflow, registered under its type name in the test
worker only: it answers with the input the schedule gave it."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import BULK_ENROLLMENT, BulkEnrollmentInput


@workflow.defn(name=BULK_ENROLLMENT)
class StubBulkEnrollment:
    @workflow.run
    async def run(self, request: BulkEnrollmentInput) -> BulkEnrollmentInput:
        return request
