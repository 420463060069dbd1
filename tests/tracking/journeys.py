"""A journey for the tracking tests only: it emails, then waits for a click on that email."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey


@journey
class ClickToContinue(Journey):
    name = "test_click_to_continue"
    description = "Sends a link, waits for its click, and answers with the URL clicked."
    triggers = ("tracking_test_started",)
    waits_for = ("email.clicked",)

    async def steps(self) -> None:
        await self.send("ask", template="ask", category="transactional")
        click = await self.wait_for("await_click", "email.clicked", timedelta(days=1))
        if click is None:
            return
        await self.send(
            "thanks",
            template="thanks",
            category="transactional",
            context={"clicked": str(click.properties["url"])},
        )
