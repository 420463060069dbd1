"""Small journeys that use segments (not published journeys)."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


class _ChecksQualified(Journey):
    """Waits `settle`, then branches on membership of `qualified_leads`."""

    triggers = ("go",)
    settle = timedelta(days=1)
    segment = "qualified_leads"

    async def steps(self) -> None:
        await self.wait("settle", self.settle)
        if await self.in_segment("check", self.segment):
            await self.send("member", template="member")
        else:
            await self.send("outsider", template="outsider")


@journey
class ChecksAfterADay(_ChecksQualified):
    name = "test_segment_after_a_day"


@journey
class ChecksAfterFortyDays(_ChecksQualified):
    name = "test_segment_after_forty_days"
    settle = timedelta(days=40)


@journey
class ChecksUnknownSegment(_ChecksQualified):
    name = "test_segment_unknown"
    segment = "no_such_segment"


@journey
class EntersOnQualification(Journey):
    """Entered by joining `qualified_leads` (a segment-entry trigger)."""

    name = "test_segment_entry"
    entry_segment = "qualified_leads"
    reentry = "after_exit"

    async def steps(self) -> None:
        await self.send("welcome_lead", template="welcome_lead")


@journey
class EntersOnBirthday(Journey):
    """Entered by joining `birthday_candidates` (attributes change through the contacts API)."""

    name = "test_segment_birthday_entry"
    entry_segment = "birthday_candidates"

    async def steps(self) -> None:
        await self.send("greet", template="greet")
