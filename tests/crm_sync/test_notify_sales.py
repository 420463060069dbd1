"""notify_sales: one CRM task and one internal email per notification, whatever the retries,
and never waiting on the CRM."""

from __future__ import annotations

import pytest
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.crm_sync import CrmSyncActivities, SalesNotifier
from activities.rendering import TemplateRenderer
from journeyman.crm.contracts import PushRequest
from journeyman.settings import Settings
from persistence import CrmTask, Database, Message
from persistence.models import utcnow
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import TEMPLATE, WINDOW, email_of
from tests.crm_sync.helpers import Outbox, crm_id_of, qualified_lead
from workflows.contracts import SalesNotification


def notification(contact_id: str) -> SalesNotification:
    return SalesNotification(
        notification_id=f"journey:lead_nurturing:{contact_id}:1:notify",
        workflow_id=f"journey:lead_nurturing:{contact_id}",
        journey="lead_nurturing",
        step="notify",
        contact_id=contact_id,
        subject=f"Qualified lead {contact_id}",
        template=TEMPLATE,
        context={"reason": "Crossed 50 points."},
    )


def notifier(database: Database, settings: Settings, mailer: Outbox) -> SalesNotifier:
    return SalesNotifier(
        database=database,
        settings=settings,
        renderer=TemplateRenderer.from_settings(settings),
        mailer=mailer,
    )


async def _rows(database: Database, contact_id: str) -> tuple[list[CrmTask], list[Message]]:
    async with database.session() as session:
        tasks = (await session.exec(select(CrmTask).where(CrmTask.contact_id == contact_id))).all()
        messages = (
            await session.exec(select(Message).where(Message.contact_id == contact_id))
        ).all()
    return list(tasks), list(messages)


async def test_one_task_and_one_email_under_retries_even_with_the_crm_down(
    database: Database,
    settings: Settings,
    sync: CrmSyncActivities,
    hubspot: FakeHubSpot,
    contact_id: str,
) -> None:
    await qualified_lead(database, contact_id)
    hubspot.outage = True
    mailer = Outbox(fail=1)
    sales = notifier(database, settings, mailer)
    env = ActivityEnvironment()
    request = notification(contact_id)
    with pytest.raises(ConnectionRefusedError):
        await env.run(sales.notify_sales, request)
    first = await env.run(sales.notify_sales, request)
    again = await env.run(sales.notify_sales, request)
    assert (first.task_queued, first.email) == (True, "sent")
    assert (again.task_queued, again.email) == (True, "already_sent")
    assert hubspot.requests == []  # notifying never calls the CRM

    [message] = mailer.sent
    assert message["To"] == "sales@example.com"
    assert message["Subject"] == f"Hot lead: {email_of(contact_id)}"
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "scored 62.0 (marketingqualifiedlead), company Acme. Crossed 50 points." in (
        text.get_content()
    )
    [task], [row] = await _rows(database, contact_id)
    assert (task.id, task.status, task.subject) == (
        request.notification_id,
        "pending",
        request.subject,
    )
    assert "company Acme" in task.body
    assert (row.message_id, row.category, row.status, row.attempts) == (
        f"{request.notification_id}:sales",
        "internal",
        "sent",
        2,
    )

    # When HubSpot is back, the push creates the contact, then the task for its owner.
    hubspot.outage = False
    result = await sync.push_due(PushRequest(now=utcnow() + WINDOW))
    assert result.tasks_created == 1
    [created] = hubspot.tasks.values()
    crm_id = await crm_id_of(database, contact_id)
    assert crm_id is not None and created.contact_ids == [crm_id]
    assert created.properties["hs_task_subject"] == request.subject
    assert created.properties["hubspot_owner_id"] == "77"
    [task], _ = await _rows(database, contact_id)
    assert (task.status, task.crm_task_id) == ("created", created.id)
    # Created once: later pushes leave it alone.
    await sync.push_due(PushRequest(now=utcnow() + WINDOW * 2))
    assert len(hubspot.tasks) == 1


async def test_without_a_crm_only_the_email_goes(
    database: Database, settings: Settings, contact_id: str
) -> None:
    await qualified_lead(database, contact_id)
    mailer = Outbox()
    no_crm = settings.model_copy(update={"crm": "none"})
    result = await ActivityEnvironment().run(
        notifier(database, no_crm, mailer).notify_sales, notification(contact_id)
    )
    assert (result.task_queued, result.email) == (False, "sent")
    tasks, _ = await _rows(database, contact_id)
    assert tasks == []
    assert len(mailer.sent) == 1


async def test_a_send_cut_off_mid_way_is_sent_again_once(
    database: Database, settings: Settings, contact_id: str
) -> None:
    """A retry that finds the email claimed, not settled and not locked (its attempt died)
    sends it again, once, with the same Message-ID (tests/crm_sync/test_sales_email_once.py
    has the real SMTP server and the live attempt)."""
    await qualified_lead(database, contact_id)
    request = notification(contact_id)
    async with database.session() as session:
        session.add(
            Message(
                message_id=f"{request.notification_id}:sales",
                workflow_id=request.workflow_id,
                run_id="r",
                journey=request.journey,
                step=request.step,
                contact_id=contact_id,
                channel="email",
                category="internal",
                template=TEMPLATE,
                status="sending",
            )
        )
        await session.commit()
    mailer = Outbox()
    result = await ActivityEnvironment().run(
        notifier(database, settings, mailer).notify_sales, request
    )
    assert result.email == "sent"
    assert len(mailer.sent) == 1
    again = await ActivityEnvironment().run(
        notifier(database, settings, mailer).notify_sales, request
    )
    assert (again.email, len(mailer.sent)) == ("already_sent", 1)
