"""No personal data in Temporal: a contact with a distinctive email, phone and name goes
through the journeys that read contacts, scoring, sales notification, the CRM sync and a bulk
enrollment, every activity real; then every history of its workflows is searched for them.

The email and the name did go through the system (the emails went to the address, the sales
alert names the lead): only the histories must not hold them. Workflow ids, search attributes
and memos hold the contact id, which is what serves.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import select
from temporalio.client import Client

from journeyman.crm.contracts import CRM_SYNC_WORKFLOW_ID
from journeyman.scoring.contracts import scorer_workflow_id
from persistence import Database, Enrollment
from tests.api.helpers import eventually
from tests.crm.fake_hubspot import FakeHubSpot
from tests.privacy.conftest import SALES, Person, Stack, enroll_everywhere


async def histories(client: Client, workflow_ids: set[str]) -> dict[str, list[Found]]:
    """Each workflow's latest-run history, event by event, as JSON (what `temporal workflow
    show` exports) followed by its payloads decoded: the JSON holds them base64-encoded."""
    found: dict[str, list[Found]] = {}
    for workflow_id in sorted(workflow_ids):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events = json.loads(history.to_json())["events"]
        found[workflow_id] = [
            Found(event["eventType"], "\n".join([json.dumps(event), *_decoded(event)]))
            for event in events
        ]
    return found


@dataclass
class Found:
    event_type: str
    text: str


def _decoded(node: Any) -> Iterator[str]:
    """Every string of the tree that is base64 of UTF-8 text, decoded."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _decoded(value)
    elif isinstance(node, list):
        for value in node:
            yield from _decoded(value)
    elif isinstance(node, str):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            yield base64.b64decode(node, validate=True).decode()


async def test_no_email_phone_or_name_in_any_history(
    stack: Stack, database: Database, hubspot: FakeHubSpot
) -> None:
    person = Person()
    cid = person.contact_id
    bulk_workflow_id = await enroll_everywhere(stack.api, person)

    # Two weeks of journey time: every topic email, both cart reminders, the demo reminder.
    for _ in range(14):
        await stack.env.sleep(timedelta(days=1))

    # The personal data did flow, through activities: mail to the address, an alert naming
    # the lead, the contact and a task in HubSpot.
    mine = stack.mail.to(person.email)
    assert len(mine) >= 6, [m["Subject"] for m in mine]
    (alert,) = stack.mail.to(SALES)
    assert person.first_name in str(alert["Subject"])
    await eventually(lambda: _probe(hubspot, person.email), bool, within=20)
    assert len(hubspot.tasks) >= 1

    async with database.session() as session:
        rows = (await session.exec(select(Enrollment).where(Enrollment.contact_id == cid))).all()
    journeys = {row.journey for row in rows}
    assert {"welcome_series", "lead_nurturing", "abandoned_cart", "onboarding"} <= journeys
    workflow_ids = {row.workflow_id for row in rows}
    workflow_ids |= {
        scorer_workflow_id(cid),
        CRM_SYNC_WORKFLOW_ID,
        bulk_workflow_id,
    }
    found = await histories(stack.client, workflow_ids)
    # Sanity: the histories are the real thing, and do name the contact by its id.
    texts = {wid: "\n".join(e.text for e in events) for wid, events in found.items()}
    assert all(cid in text for wid, text in texts.items() if wid != CRM_SYNC_WORKFLOW_ID)
    assert any("read_contact" in text for text in texts.values())
    assert any("notify_sales" in text for text in texts.values())

    leaks = sorted(
        {
            f"{what} in {event.event_type} of {wid}"
            for wid, events in found.items()
            for event in events
            for what, value in person.secrets().items()
            if value in event.text
        }
    )
    assert not leaks, "\n".join(leaks)


async def _probe(hubspot: FakeHubSpot, email: str) -> bool:
    return hubspot.contact(email) is not None
