"""Welcome series: a welcome now, then every two days content on the contact's interests.

Interests are read fresh before each email, so what a contact tells us mid-series (progressive
profiling) shapes the next email. Interests rotate; a contact without any gets general picks.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.content import pick_content
    from workflows.runtime import Journey, journey

TOPIC_EMAILS = 3
EVERY = timedelta(days=2)


@journey
class WelcomeSeries(Journey):
    name = "welcome_series"
    version = 1
    description = "A welcome, then three emails two days apart on the contact's interests."
    triggers = ("signed_up",)
    goals = ("order_placed",)
    exits = ("unsubscribed",)

    async def steps(self) -> None:
        await self.send("welcome", template="welcome_series/welcome")
        for number in range(1, TOPIC_EMAILS + 1):
            await self.wait(f"pause_{number}", EVERY)
            contact = await self.read_contact(f"read_interests_{number}")
            interests = contact.attributes.get("interests") or []
            pick = pick_content([str(i) for i in interests], number - 1)
            await self.send(
                f"topic_{number}",
                template="welcome_series/topic",
                context={"number": number, "pick": pick},
            )
