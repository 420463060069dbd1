"""B2B lead nurturing: from a whitepaper download to a sales conversation and a purchase.

The whitepaper goes out at once, then a welcome series of two more emails over a week
nurtures the lead. The moment the lead score qualifies it (`lead.qualified`, emitted by
scoring; or it already was at download), the series stops: sales is notified (a CRM
task for the owner and an internal email) and the contact is invited to a demo. A contact who
attends gets a follow-up sequence; one who does not gets a single reminder. An order at any
point converts the enrollment and hands the contact to `onboarding`.

The trigger's `title` and `url` properties name the whitepaper, and `demo_attended` may carry
the demo's `recording_url` (all optional).
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import ContactSnapshot
    from workflows.runtime import Journey, journey

QUALIFIED = "lead.qualified"
DEMO_ATTENDED = "demo_attended"
# The series: day 0 the whitepaper, day 3 a case study, day 7 the pricing page.
BEFORE_CASE_STUDY = timedelta(days=3)
BEFORE_PRICING = timedelta(days=4)
# After the series, how long a lead may still qualify before the enrollment completes.
QUALIFY_WINDOW = timedelta(days=30)
DEMO_WINDOW = timedelta(days=7)
# Post-demo follow-ups: the recording at once, the proposal 3 days later, a check-in 4 after.
BEFORE_PROPOSAL = timedelta(days=3)
BEFORE_CHECK_IN = timedelta(days=4)
# How long the enrollment stays open for the order (the goal) once sales has the lead.
ORDER_WINDOW = timedelta(days=30)

DEFAULT_WHITEPAPER = {"title": "our whitepaper", "url": "/resources"}
# Where the demo recording lives when the `demo_attended` event names none (`recording_url`).
DEFAULT_RECORDING = "/demo/recording"


@journey
class LeadNurturing(Journey):
    name = "lead_nurturing"
    version = 1
    description = (
        "Three emails over a week after a whitepaper download; when the lead qualifies (at any "
        "point, or within 30 days after the series, else it completes), sales is notified and "
        "the contact invited to a demo: attending gets three follow-ups over a week, missing it "
        "one reminder. An order converts and hands the contact to onboarding."
    )
    triggers = ("whitepaper_downloaded",)
    goals = ("order_placed",)
    exits = ("unsubscribed",)
    waits_for = (QUALIFIED, DEMO_ATTENDED)
    on_conversion_start = "onboarding"

    async def steps(self) -> None:
        whitepaper = whitepaper_from(self.trigger.properties if self.trigger else {})
        # The contact asked for the whitepaper: it goes out whatever happens next.
        await self.send("whitepaper", template="lead_nurturing/whitepaper", context=whitepaper)
        contact = await self.read_contact("check_qualified")
        if contact.qualified:
            # Sales wants a hot lead now, not after a week of nurturing emails.
            await self.hand_to_sales(contact, whitepaper, "was already qualified at download")
            return
        qualified_in = await self.rest_of_series(whitepaper)
        if qualified_in is None:
            return  # never qualified: the enrollment completes
        lead = await self.read_contact("read_qualified_lead")
        await self.hand_to_sales(lead, whitepaper, qualified_in)

    async def rest_of_series(self, whitepaper: dict[str, Any]) -> str | None:
        """The case study and the pricing page, each pause cut short by qualification;
        returns when the lead qualified (said for the sales alert), or None if it never did."""
        if await self.qualified_within("pause_before_case_study", BEFORE_CASE_STUDY):
            return "qualified during the welcome series, after the whitepaper email"
        await self.send("case_study", template="lead_nurturing/case_study", context=whitepaper)
        if await self.qualified_within("pause_before_pricing", BEFORE_PRICING):
            return "qualified during the welcome series, after the case study email"
        await self.send("pricing_invite", template="lead_nurturing/pricing", context=whitepaper)
        if await self.qualified_within("await_qualification", QUALIFY_WINDOW):
            return "qualified after the welcome series"
        return None

    async def qualified_within(self, step: str, window: timedelta) -> bool:
        return await self.wait_for(step, QUALIFIED, window) is not None

    async def hand_to_sales(
        self, lead: ContactSnapshot, whitepaper: dict[str, Any], how: str
    ) -> None:
        await self.notify_sales(
            "notify_sales",
            subject=f"Qualified lead: {lead_label(lead)}",
            template="lead_nurturing/sales_alert",
            context={**whitepaper, "score": round(lead.score), "how": how},
        )
        await self.send("demo_invite", template="lead_nurturing/demo_invite", context=whitepaper)
        attended = await self.wait_for("await_demo", DEMO_ATTENDED, DEMO_WINDOW)
        if attended is not None:
            recording = attended.properties.get("recording_url") or DEFAULT_RECORDING
            await self.send(
                "demo_thanks",
                template="lead_nurturing/demo_thanks",
                context={"recording_url": str(recording)},
            )
            await self.wait("before_proposal", BEFORE_PROPOSAL)
            await self.send("proposal", template="lead_nurturing/proposal")
            await self.wait("before_check_in", BEFORE_CHECK_IN)
            await self.send("post_demo_check_in", template="lead_nurturing/check_in")
        else:
            await self.send("demo_reminder", template="lead_nurturing/demo_reminder")
        # An order during this wait (or any earlier step) is the goal and converts.
        await self.wait("await_order", ORDER_WINDOW)


def whitepaper_from(properties: dict[str, Any]) -> dict[str, Any]:
    """The whitepaper the contact downloaded, as the templates see it (`whitepaper.title`)."""
    title = properties.get("title") or DEFAULT_WHITEPAPER["title"]
    url = properties.get("url") or DEFAULT_WHITEPAPER["url"]
    return {"whitepaper": {"title": str(title), "url": str(url)}}


def lead_label(lead: ContactSnapshot) -> str:
    """How the sales alert's subject names the lead: name and company, else the email."""
    attributes = lead.attributes
    name = " ".join(
        str(part) for part in (attributes.get("first_name"), attributes.get("last_name")) if part
    )
    company = attributes.get("company")
    who = name or lead.email or lead.contact_id
    return f"{who} ({company})" if company else who
