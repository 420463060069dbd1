"""Journeys for the sandbox tests: two that break determinism, as a user might write them."""

import random
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class ReadsTheClock(Journey):
    name = "test_reads_the_clock"
    triggers = ("clock_test",)

    async def steps(self) -> None:
        # Wrong: the wall clock differs on replay; `workflow.now()` is the journey's clock.
        late = datetime.now() + timedelta(days=1)
        await self.wait(f"until_{late:%H}", timedelta(days=1))


@journey
class RollsADie(Journey):
    name = "test_rolls_a_die"
    triggers = ("die_test",)

    async def steps(self) -> None:
        # Wrong: a fresh draw on replay; `workflow.random()` is seeded by the history.
        await self.wait(f"wait_{random.randint(1, 6)}", timedelta(days=1))
