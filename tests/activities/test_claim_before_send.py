"""The issue's claim-before-send test: a real workflow whose send fails after the SMTP call.

Each send's first attempt really sends over SMTP and records the message, then raises, as a
worker would that crashed before reporting the result. Temporal retries the activity; the
retry finds the message id claimed and sent, and answers from the database. The sink must
hold exactly one email per step.
"""

from __future__ import annotations

import uuid

from sqlmodel import col, select
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import JourneyActivities, SmtpMailer, TemplateRenderer
from journeyman.settings import Settings
from journeyman.smtp_sink import SmtpSink
from persistence import Database, Enrollment, Message
from workflows.contracts import (
    SEND_MESSAGE,
    EnrollmentInput,
    EnrollmentResult,
    Event,
    SendRequest,
    SendResult,
    workflow_id_for,
)
from workflows.post_purchase import PostPurchase
from workflows.runtime import journey_search_attributes

from .conftest import AddContact, RecordingStarter
from .samples import ORDER


class FailsAfterSending(JourneyActivities):
    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        result = await super().send_message(request)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost after the SMTP call succeeded")
        return result


async def test_a_send_retried_after_the_smtp_call_is_not_sent_again(
    time_env: WorkflowEnvironment,
    task_queue: str,
    database: Database,
    settings: Settings,
    sink: SmtpSink,
    add_contact: AddContact,
    renderer: TemplateRenderer,
) -> None:
    contact_id = await add_contact(attributes={"first_name": "Ada"})
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    order = {**ORDER, "order_id": order_id}
    acts = FailsAfterSending(
        database=database,
        settings=settings,
        renderer=renderer,
        mailer=SmtpMailer.from_settings(settings),
        starter=RecordingStarter(),
    )
    workflow_id = workflow_id_for(PostPurchase.name, contact_id, order_id)

    async with Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=[PostPurchase],
        activities=[
            acts.send_message,
            acts.read_contact,
            acts.record_lifecycle,
            acts.start_journey,
        ],
    ):
        handle = await time_env.client.start_workflow(
            PostPurchase.workflow_type(),
            EnrollmentInput(
                contact_id=contact_id,
                key=order_id,
                trigger=Event(
                    id=f"evt-{order_id}",
                    contact_id=contact_id,
                    name="order_placed",
                    properties=order,
                ),
            ),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=journey_search_attributes(PostPurchase, contact_id),
            result_type=EnrollmentResult,
        )
        result = await handle.result()
        history: WorkflowHistory = await handle.fetch_history()

    # Each send really ran twice (history keeps the last attempt of an activity)...
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert [e.activity_task_started_event_attributes.attempt for e in started] == [2, 2]
    # ...and yet each step's email went out exactly once.
    ids = [m["X-Journeyman-Message-Id"] for m in sink.messages]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert [m["Subject"] for m in sink.messages] == [
        f"Thank you for your order {order_id}",
        "How is the Trail Runner 2 working out?",
    ]
    assert [(s.name, s.outcome) for s in result.steps] == [
        ("thank_you", "sent"),
        ("settle_in", "waited"),
        ("review_request", "sent"),
    ]
    async with database.session() as session:
        messages = (
            await session.exec(select(Message).where(col(Message.workflow_id) == workflow_id))
        ).all()
        enrollment = (
            await session.exec(select(Enrollment).where(col(Enrollment.workflow_id) == workflow_id))
        ).one()
    assert sorted((m.step, m.status, m.attempts) for m in messages) == [
        ("review_request", "sent", 1),
        ("thank_you", "sent", 1),
    ]
    assert {m.message_id for m in messages} == set(ids)
    assert (enrollment.status, enrollment.current_step) == ("completed", "review_request")
