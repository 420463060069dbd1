"""A small journey for the outage tests (not a published journey): one send on the channel the
trigger names, optionally after a wait of a few seconds.

In a module of its own, importing only what a workflow may, because the workflow sandbox
re-imports the module that defines a workflow.
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import Channel
    from workflows.runtime import Journey, journey

# channel -> the template it sends (each renders from the properties `outage_support` gives)
TEMPLATES: dict[Channel, str] = {
    "email": "post_purchase/thank_you",
    "sms": "abandoned_cart/last_chance",
    "push": "post_purchase/thank_you",
}


@journey
class SendAfterPause(Journey):
    name = "chaos_send_after_pause"
    description = "Waits `pause_seconds` (maybe 0), then sends once on `channel`."
    triggers = ("chaos_go",)
    reentry = "always"

    async def steps(self) -> None:
        properties: dict[str, Any] = dict(self.trigger.properties) if self.trigger else {}
        pause = float(properties.get("pause_seconds", 0))
        if pause > 0:
            await self.wait("pause", timedelta(seconds=pause))
        channel: Channel = properties.get("channel", "email")
        # Transactional: consent, quiet hours and caps are not what these tests are about.
        await self.send(
            "message",
            template=TEMPLATES[channel],
            channel=channel,
            context=dict(properties.get("context", {})),
            category="transactional",
        )


OUTAGE_JOURNEYS: list[type[Journey]] = [SendAfterPause]
