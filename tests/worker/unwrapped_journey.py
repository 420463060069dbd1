"""A journey that imports the runtime without `imports_passed_through()`, as a user might.

Its `runtime_identity` query answers `id()` of the `Journey` class its run sees: the worker's
own when the runtime is passed through, a copy made for the run when it was executed again
inside the run's sandbox.
"""

from datetime import timedelta

from temporalio import workflow

from workflows.runtime import Journey, journey


@journey
class UnwrappedImport(Journey):
    name = "test_unwrapped_import"
    triggers = ("unwrapped_test",)

    async def steps(self) -> None:
        await self.wait("pause", timedelta(days=1))

    @workflow.query
    def runtime_identity(self) -> int:
        return id(Journey)
