"""End to end: a journey emails through the real send activity, the person opens and clicks the
tracked link, and the journey waiting for `email.clicked` gets the click and its URL."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage

import httpx
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from journeyman.smtp_sink import SmtpSink
from persistence import Database, EventRecord, Message
from tests.api.helpers import parked_in, result_of
from workflows.contracts import workflow_id_for

from .journeys import ClickToContinue

PUBLIC = "https://mail.shop.example"


def _part(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content())


async def test_a_click_in_the_email_reaches_the_journey_waiting_for_it(
    api: httpx.AsyncClient,
    web: httpx.AsyncClient,
    worker: None,
    sink: SmtpSink,
    database: Database,
    dev_env: WorkflowEnvironment,
) -> None:
    contact_id = f"c-{uuid.uuid4().hex[:12]}"
    created = await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
    assert created.status_code in (200, 201), created.text
    started = await api.post(
        "/v1/events",
        json={
            "id": f"e-{uuid.uuid4().hex}",
            "contact_id": contact_id,
            "name": "tracking_test_started",
        },
    )
    assert started.status_code == 202, started.text
    workflow_id = workflow_id_for(ClickToContinue.name, contact_id)
    await parked_in(dev_env.client, workflow_id, "await_click")

    [ask] = await sink.wait_for(1)
    html = _part(ask, "html")
    clicks = re.findall(rf'href="{re.escape(PUBLIC)}(/t/c/[^"]+)"', html)
    [pixel] = re.findall(rf'src="{re.escape(PUBLIC)}(/t/o/[^"]+)"', html)
    assert len(clicks) == 2
    assert "https://shop.example/blue" in _part(ask, "plain")

    assert (await web.get(pixel)).status_code == 200
    response = await web.get(clicks[1])

    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/blue?size=m&fit=slim"
    result = await result_of(dev_env.client, workflow_id)
    assert result.status == "completed"
    [_, thanks] = await sink.wait_for(2)
    assert _part(thanks, "plain").strip() == "You picked https://shop.example/blue?size=m&fit=slim"
    async with database.session() as session:
        [sent] = (
            await session.exec(
                select(Message).where(
                    col(Message.contact_id) == contact_id, col(Message.step) == "ask"
                )
            )
        ).all()
        names = (
            await session.exec(
                select(EventRecord.name).where(col(EventRecord.contact_id) == contact_id)
            )
        ).all()
    assert sent.links == ["https://shop.example/red", "https://shop.example/blue?size=m&fit=slim"]
    assert (sent.clicks, sent.opened_at is not None) == (1, True)
    assert sorted(names) == ["email.clicked", "email.opened", "tracking_test_started"]
