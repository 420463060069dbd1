"""onboarding in simulated time: three emails over two weeks, however the customer arrives."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.rendering import TemplateRenderer
from journeyman.settings import Settings
from tests.journeys.harness import enrolled, render_sent
from workflows import catalog
from workflows.onboarding import Onboarding

THREE_EMAILS = [
    ("getting_started", timedelta(0)),
    ("tips", timedelta(days=7)),
    ("check_in", timedelta(days=14)),
]


async def test_three_emails_at_days_0_7_and_14(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, Onboarding, trigger_properties={"stage": "customer"}) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.step, s.after) for s in run.capture.sends] == THREE_EMAILS
    assert [s.template for s in run.capture.sends] == [
        "onboarding/getting_started",
        "onboarding/tips",
        "onboarding/check_in",
    ]
    assert {s.category for s in run.capture.sends} == {"marketing"}
    first, last = run.capture.lifecycle[0], run.capture.lifecycle[-1]
    assert abs(last.at - first.at - timedelta(days=14)) < timedelta(seconds=1)


async def test_the_hand_off_from_lead_nurturing_runs_the_same_emails(
    time_env: WorkflowEnvironment,
) -> None:
    """Lead nurturing starts onboarding with its converting order as the trigger."""
    async with enrolled(
        time_env, Onboarding, trigger="order_placed", trigger_properties={"order_id": "o-77"}
    ) as run:
        result = await run.result()

    assert result.status == "completed"
    assert [(s.step, s.after) for s in run.capture.sends] == THREE_EMAILS


async def test_unsubscribing_exits(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, Onboarding) as run:
        await run.advance(timedelta(days=8))
        await run.event("unsubscribed", channel="email")
        result = await run.result()

    assert result.status == "exited"
    assert [s.step for s in run.capture.sends] == ["getting_started", "tips"]


def test_declarations() -> None:
    assert Onboarding in catalog.triggered_by("lifecycle.customer")
    assert Onboarding.reentry == "never"
    assert Onboarding.goals == ()
    assert catalog.listening_to("unsubscribed").count(Onboarding) == 1


# ----- templates --------------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SETTINGS = Settings(
    public_url="https://shop.example.com/",
    email_from="Acme Outfitters <hello@shop.example.com>",
)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "sandboxed"])
def renderer(request: pytest.FixtureRequest) -> TemplateRenderer:
    return TemplateRenderer.from_settings(SETTINGS, sandboxed=request.param)


@pytest.mark.parametrize("first_name", ["Ada", None])
async def test_every_template_renders_with_the_context_the_journey_passes(
    time_env: WorkflowEnvironment, renderer: TemplateRenderer, first_name: str | None
) -> None:
    async with enrolled(time_env, Onboarding, attributes={"first_name": first_name}) as run:
        await run.result()

    greeting = f"Hi {first_name or 'there'},"
    for message in run.capture.sends:
        email = render_sent(renderer, run, "onboarding", message)
        assert email.subject and "\n" not in email.subject
        assert email.text.startswith(greeting)
        assert f"<p>{greeting}</p>" in email.html
        assert email.html.lstrip().startswith("<!DOCTYPE html>")
        assert "https://shop.example.com/docs" in email.text
        assert "Acme Outfitters" in email.text and "Acme Outfitters" in email.html
        for part in (email.subject, email.text, email.html):
            assert "None" not in part and "Undefined" not in part
    on_disk = {
        f"onboarding/{path.name.split('.')[0]}" for path in (TEMPLATES / "onboarding").iterdir()
    }
    assert set(run.capture.templates) == on_disk
