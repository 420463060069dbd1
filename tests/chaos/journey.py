"""The chaos drill: a journey like the real ones, with waits of seconds, for tests/chaos.

It lives here, not in workflows/, so the catalog, the README and the recorded histories do not
know it; tests/chaos/worker_main.py registers it on the real worker. Every enrollment sends
three marketing emails whatever happens (the reply only changes the last one's words), so a
run of N enrollments must leave exactly 3N distinct messages at the SMTP sink.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey

TEMPLATE = "chaos/note"
REPLY = "chaos.reply"
# The send steps, in order: what the sink must hold once per enrollment.
SEND_STEPS = ("first", "second", "third")
PAUSE = timedelta(seconds=2)
REPLY_WINDOW = timedelta(seconds=3)


@journey
class ChaosDrill(Journey):
    name = "chaos_drill"
    description = "send, wait 2 s, send, wait up to 3 s for a reply, send (tests/chaos only)"
    waits_for = (REPLY,)

    async def steps(self) -> None:
        first, second, third = SEND_STEPS
        await self.send(first, template=TEMPLATE, context={"n": 1})
        await self.wait("pause", PAUSE)
        await self.send(second, template=TEMPLATE, context={"n": 2})
        reply = await self.wait_for("reply", REPLY, REPLY_WINDOW)
        await self.send(third, template=TEMPLATE, context={"n": 3, "replied": reply is not None})
