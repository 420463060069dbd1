"""Onboarding: three emails over a customer's first two weeks.

Started when the CRM marks a contact a customer (`lifecycle.customer`), and by lead nurturing's
hand-off with the converting order as trigger; a contact is onboarded once, however it arrives.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey

TIPS_AFTER = timedelta(days=7)
CHECK_IN_AFTER = timedelta(days=7)


@journey
class Onboarding(Journey):
    name = "onboarding"
    version = 1
    description = "Getting started at once, tips after a week, a check-in after two weeks."
    triggers = ("lifecycle.customer",)
    exits = ("unsubscribed",)
    reentry = "never"

    async def steps(self) -> None:
        await self.send("getting_started", template="onboarding/getting_started")
        await self.wait("before_tips", TIPS_AFTER)
        await self.send("tips", template="onboarding/tips")
        await self.wait("before_check_in", CHECK_IN_AFTER)
        await self.send("check_in", template="onboarding/check_in")
