"""Small journeys that exercise the runtime's primitives (not published journeys)."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import QuietHours
    from workflows.runtime import Journey, journey


@journey
class AskAndListen(Journey):
    name = "test_ask_and_listen"
    description = "Asks, waits for a click, thanks or nudges, then waits for a reply."
    triggers = ("asked",)
    exits = ("stop",)
    waits_for = ("clicked", "replied")

    async def steps(self) -> None:
        await self.send("ask", template="ask")
        click = await self.wait_for("await_click", "clicked", timedelta(days=1))
        if click is not None:
            await self.send("thanks", template="thanks", context={"link": click.properties["link"]})
        else:
            await self.send("nudge", template="nudge")
        reply = await self.wait_for("await_reply", ["replied", "clicked"], timedelta(hours=2))
        await self.send("close", template="close", context={"replied": reply is not None})


@journey
class HandsOn(Journey):
    name = "test_hands_on"
    description = "Waits, reads the contact, and hands VIPs to another journey."
    triggers = ("signed_up",)

    async def steps(self) -> None:
        await self.wait("settle", timedelta(hours=1))
        contact = await self.read_contact("check_tier")
        if contact.attributes.get("tier") == "vip":
            await self.start("hand_on", "welcome_series")


@journey
class WaitsUndeclared(Journey):
    name = "test_waits_undeclared"
    triggers = ("go",)

    async def steps(self) -> None:
        await self.wait_for("listen", "never_declared", timedelta(hours=1))


@journey
class RepeatsAStep(Journey):
    name = "test_repeats_a_step"
    triggers = ("go",)

    async def steps(self) -> None:
        for _ in range(2):
            await self.wait("same_name", timedelta(minutes=1))


@journey
class LocalMorning(Journey):
    name = "test_local_morning"
    description = "Waits for local mornings, then notifies the team's own service."
    triggers = ("go",)
    timezone = "Europe/Rome"

    async def steps(self) -> None:
        await self.wait_until_local("next_morning", "09:00")
        await self.send("morning_note", template="note", on_cap="defer")
        await self.wait_until_local("next_monday", "09:30", weekdays=[0])
        await self.send("receipt", template="receipt", category="transactional")
        await self.webhook("tell_crm", payload={"stage": "engaged"}, url="https://crm.example/in")


@journey
class SplitsTwice(Journey):
    name = "test_splits_twice"
    triggers = ("go",)

    async def steps(self) -> None:
        first = await self.split("subject_test", {"short": 1, "long": 1}, holdout=20)
        if first != "holdout":
            await self.send("subject_mail", template="x", context={"variant": first})
        await self.split("layout_test", {"one": 1, "two": 1, "three": 1})


@journey
class BadSplit(Journey):
    name = "test_bad_split"
    triggers = ("go",)

    async def steps(self) -> None:
        await self.split("broken", {"A": 0})


@journey
class QuietJourney(Journey):
    name = "test_quiet_journey"
    triggers = ("go",)
    quiet_hours = QuietHours("22:00", "07:00", policy="skip")

    async def steps(self) -> None:
        await self.send("journey_rule", template="x")
        await self.send("step_rule", template="x", quiet_hours=QuietHours(enabled=False))
