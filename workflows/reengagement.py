"""Re-engagement: contacts silent for 30 days get a "we miss you" offer; a week more of silence
marks them dormant (list hygiene), and dormant contacts get no marketing email.

Run daily by a Temporal Schedule on the `inactive_30d` segment (see `journeyman/schedules.py`).
Any event of the contact (a visit, an order, opening or clicking this very email) is a goal: it
ends the enrollment `converted` whenever it comes. Their next event also clears the dormant
mark (`api/services/events.py`), so a dormant contact who comes back gets email again.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import ANY_EVENT, JourneySchedule
    from workflows.runtime import Journey, journey

# The comeback offer, one code for everyone: the shop's checkout knows it.
OFFER = {"code": "COMEBACK15", "percent": 15, "valid_days": 14}
GRACE = timedelta(days=7)


@journey
class Reengagement(Journey):
    name = "reengagement"
    version = 1
    description = (
        "Daily: contacts inactive for 30 days get a we-miss-you offer; "
        "no event within 7 days marks them dormant."
    )
    goals = (ANY_EVENT,)
    exits = ("unsubscribed",)
    # A contact who converted and went quiet again may be won back again, a month later.
    reentry = "after_exit"
    schedule = JourneySchedule(segment="inactive_30d", hour=[10], minute=[0])

    async def steps(self) -> None:
        await self.send("we_miss_you", template="reengagement/we_miss_you", context=_offer())
        # Any event during the grace period converts (a goal), cancelling this wait.
        await self.wait("grace_period", GRACE)
        await self.update_contact(
            "mark_dormant",
            dormant=True,
            reason=f"reengagement: no activity {GRACE.days} days after the offer",
        )


def _offer() -> dict[str, object]:
    return {"offer": dict(OFFER)}
