"""What a hard bounce or complaint does downstream: journeys that exit on `unsubscribed` end,
and the send activity does not email the address again."""

from __future__ import annotations

from email.message import EmailMessage

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import JourneyActivities, TemplateRenderer
from journeyman.settings import Settings
from persistence import Contact, Database
from tests.activities.conftest import RecordingStarter
from tests.activities.samples import ORDER
from tests.activities.samples import event as trigger
from tests.activities.sends import send_request
from tests.api.helpers import event as behaviour
from tests.api.helpers import parked_in, result_of, wait_for_rows
from workflows.contracts import SendRequest

from .helpers import BEARER, WEBHOOK, consent_events, contact, event, sent_email

run = ActivityEnvironment().run


class Outbox:
    """A mailer that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.messages.append(message)


async def test_a_hard_bounce_ends_every_journey_that_exits_on_unsubscribed(
    api: httpx.AsyncClient,
    hook: httpx.AsyncClient,
    database: Database,
    dev_env: WorkflowEnvironment,
    contact_id: str,
) -> None:
    welcome = f"journey:welcome_series:{contact_id}"
    cart = f"journey:abandoned_cart:{contact_id}:cart-7"
    await api.put(f"/v1/contacts/{contact_id}", json={"email": "ada@example.com"})
    await api.post("/v1/events", json=behaviour(contact_id, "signed_up"))
    await api.post("/v1/events", json=behaviour(contact_id, "cart_abandoned", cart_id="cart-7"))
    await parked_in(dev_env.client, welcome, "pause_1")
    await parked_in(dev_env.client, cart, "grace_period")
    await wait_for_rows(database, contact_id, lambda rows: len(rows) == 2)
    sent = await sent_email(database, contact_id)

    response = await hook.post(
        WEBHOOK,
        json={"events": [event(sent.message_id, "bounced", bounce="hard")]},
        headers=BEARER,
    )

    assert response.json()["events"][0]["outcome"] == "applied"
    for workflow_id in (welcome, cart):
        result = await result_of(dev_env.client, workflow_id)
        assert (result.status, result.ended_by) == ("exited", "event:unsubscribed")
    [unsubscribed] = await consent_events(database, contact_id)
    assert sorted((j["journey"], j["action"]) for j in unsubscribed.routing or []) == [
        ("abandoned_cart", "signalled"),
        ("welcome_series", "signalled"),
    ]


# ----- the send path -----------------------------------------------------------------------


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def sender(database: Database, settings: Settings, outbox: Outbox) -> JourneyActivities:
    # No quiet hours: what is checked here must not depend on the time of day.
    quiet = settings.model_copy(update={"quiet_hours": ""})
    return JourneyActivities(
        database=database,
        settings=quiet,
        renderer=TemplateRenderer.from_settings(quiet),
        mailer=outbox,
        starter=RecordingStarter(),
    )


async def bounced_contact(hook: httpx.AsyncClient, database: Database, contact_id: str) -> None:
    sent = await sent_email(database, contact_id)
    await hook.post(
        WEBHOOK,
        json={"events": [event(sent.message_id, "bounced", bounce="hard")]},
        headers=BEARER,
    )
    assert (await contact(database, contact_id)).email_suppressed == "hard_bounce"


def thank_you(contact_id: str) -> SendRequest:
    return send_request(
        contact_id,
        journey="post_purchase",
        step="thank_you",
        template="post_purchase/thank_you",
        context=ORDER,
        trigger=trigger("order_placed", ORDER),
        category="transactional",
    )


async def test_no_marketing_email_goes_to_a_hard_bounced_address(
    hook: httpx.AsyncClient,
    database: Database,
    sender: JourneyActivities,
    outbox: Outbox,
    contact_id: str,
) -> None:
    await bounced_contact(hook, database, contact_id)

    result = await run(sender.send_message, send_request(contact_id))

    # `unsubscribed` (consent withdrawn) today; `hard_bounce` once the rule below lands.
    assert (result.status, result.reason) in {
        ("suppressed", "unsubscribed"),
        ("suppressed", "hard_bounce"),
    }
    assert outbox.messages == []


async def test_the_outbox_is_real_a_transactional_email_to_a_good_address_goes_out(
    database: Database, sender: JourneyActivities, outbox: Outbox, contact_id: str
) -> None:
    # The control for the two tests below: the same send reaches the mailer when nothing
    # is suppressed, so their "nothing sent" means something.
    await sent_email(database, contact_id)

    result = await run(sender.send_message, thank_you(contact_id))

    assert result.status == "sent"
    assert len(outbox.messages) == 1


async def test_no_transactional_email_goes_to_a_hard_bounced_address(
    hook: httpx.AsyncClient,
    database: Database,
    sender: JourneyActivities,
    outbox: Outbox,
    contact_id: str,
) -> None:
    await bounced_contact(hook, database, contact_id)

    result = await run(sender.send_message, thank_you(contact_id))

    assert outbox.messages == []
    assert (result.status, result.reason) == ("suppressed", "hard_bounce")


async def test_a_resubscribe_does_not_reopen_a_hard_bounced_address(
    hook: httpx.AsyncClient,
    database: Database,
    sender: JourneyActivities,
    outbox: Outbox,
    contact_id: str,
) -> None:
    await bounced_contact(hook, database, contact_id)
    async with database.session() as session:
        person = await session.get(Contact, contact_id)
        assert person is not None
        person.email_consent = True  # as PUT /v1/contacts/{id}/subscriptions {"email": true}
        await session.commit()

    result = await run(sender.send_message, send_request(contact_id))

    assert outbox.messages == []
    assert (result.status, result.reason) == ("suppressed", "hard_bounce")
