"""`DELETE /v1/contacts/{id}` (GDPR erasure) on PostgreSQL with every part real: afterwards no
row of any table holds the contact's id, email, phone or name, its journeys are ended and
send nothing more, the erasure is recorded, a repeat answers the same record, and the id is
free to come back as a new contact."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select
from temporalio.client import Client, WorkflowExecutionStatus

import persistence.models  # noqa: F401 - registers every table
from journeyman.erasure import pseudonym
from journeyman.settings import Settings
from persistence import Contact, Database, Message
from persistence.models import (
    CrmFieldState,
    CrmInboundEvent,
    Engagement,
    ScoreChange,
    SegmentMembership,
)
from tests.api.helpers import eventually
from tests.privacy.conftest import (
    API_KEY,
    SALES,
    Person,
    Stack,
    enroll_everywhere,
    post_event,
)
from tests.support import running_app
from workflows.contracts import workflow_id_for


async def traces(database: Database, needles: dict[str, str]) -> list[str]:
    """`table.column: what` for every text or JSON value in the database holding a needle."""
    found = []
    async with database.session() as session:
        for table in SQLModel.metadata.sorted_tables:
            columns = [c for c in table.columns if _holds_text(c)]
            for row in (await session.exec(sa.select(*columns))).all():  # type: ignore[call-overload]
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value)
                    found += [
                        f"{table.name}.{column.name}: {what}"
                        for what, needle in needles.items()
                        if needle in text
                    ]
    return sorted(set(found))


def _holds_text(column: sa.Column[Any]) -> bool:
    """Text and JSON columns: all but numbers, flags and times (SQLModel's strings are
    `AutoString`, a decorator that is no `sa.String`)."""
    return not isinstance(column.type, sa.Boolean | sa.DateTime | sa.Integer | sa.Float)


async def add_side_rows(database: Database, person: Person) -> None:
    """Rows the story below does not make on its own: provider feedback naming the address, a
    segment membership, an inbound CRM change, a CRM field state."""
    now = datetime.now(UTC)
    async with database.session() as session:
        welcome = (
            await session.exec(
                select(Message).where(
                    Message.contact_id == person.contact_id, Message.step == "welcome"
                )
            )
        ).one()
        session.add(
            Engagement(
                message_id=welcome.message_id,
                kind="delivered",
                source_id=f"privacy:{person.token}",
                detail={"recipient": person.email},
                at=now,
            )
        )
        session.add(SegmentMembership(segment="vip", contact_id=person.contact_id, entered_at=now))
        session.add(
            CrmInboundEvent(
                id=f"privacy-{person.token}",
                contact_id=person.contact_id,
                applied={"phone": person.phone, "firstname": person.first_name},
            )
        )
        session.add(
            CrmFieldState(
                contact_id=person.contact_id, field="privacy_test", updated_at=now, source="crm"
            )
        )
        await session.commit()


async def test_erasure_leaves_no_row_and_ends_the_journeys(
    stack: Stack, database: Database, settings: Settings
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the erasure test runs on PostgreSQL (CI has it)")
    person = Person()
    cid = person.contact_id
    needles = {"contact id": cid, **person.secrets()}
    await enroll_everywhere(stack.api, person)
    # The welcome, the whitepaper, the demo invitation, onboarding's first email, the alert.
    await eventually(lambda: _count(stack, person.email), lambda n: n >= 4, within=30)
    await eventually(lambda: _count(stack, SALES), lambda n: n >= 1, within=30)
    # Every scored event applied: no scoring activity is in flight when the erasure comes (one
    # would write its row after the sweep; a repeated DELETE sweeps such rows, see erasure.py).
    await eventually(lambda: _scored(database, cid), lambda n: n == 4, within=30)
    await add_side_rows(database, person)
    before = await traces(database, needles)
    # The test can fail: every kind of row the sweep handles holds the person now.
    for table in ("contacts", "events", "messages", "enrollments", "lead_scores"):
        assert any(t.startswith(f"{table}.") for t in before), (table, before)

    erased = await stack.api.delete(f"/v1/contacts/{cid}")

    assert erased.status_code == 200, erased.text
    record = erased.json()
    assert record["pseudonym"] == pseudonym(cid, settings.secret_key)
    counts = record["counts"]
    assert counts["contacts"] == 1
    assert counts["events"] >= 6 and counts["score_changes"] == 4
    assert counts["messages"] >= 4 and counts["engagements"] == 1
    assert counts["segment_memberships"] == counts["crm_inbound_events"] == 1
    # welcome_series, lead_nurturing, abandoned_cart and onboarding at least.
    assert counts["workflows_terminated"] >= 4
    assert await traces(database, needles) == []

    # Ended for good: two weeks later nothing more went out, and no row came back.
    welcome = stack.client.get_workflow_handle(workflow_id_for("welcome_series", cid))
    assert (await welcome.describe()).status == WorkflowExecutionStatus.TERMINATED
    mailed = _sent(stack, person.email)
    for _ in range(14):
        await stack.env.sleep(timedelta(days=1))
    assert _sent(stack, person.email) == mailed
    assert await traces(database, needles) == []
    async with database.session() as session:
        kept = (
            await session.exec(select(Message).where(Message.contact_id == record["pseudonym"]))
        ).all()
    # Kept for the stats, anonymised: no address, no subject.
    assert len(kept) == counts["messages"]
    assert all(m.to_address is None and m.subject is None for m in kept)

    # Again: the same record; nothing was left to sweep.
    again = await stack.api.delete(f"/v1/contacts/{cid}")
    assert again.status_code == 200, again.text
    assert {k: again.json()[k] for k in ("pseudonym", "requested_at", "counts")} == {
        k: record[k] for k in ("pseudonym", "requested_at", "counts")
    }

    # Never known: 404.
    unknown = await stack.api.delete(f"/v1/contacts/{cid}-never")
    assert unknown.status_code == 404
    assert "unknown contact" in unknown.json()["detail"]

    # The id comes back in an event: a new, bare contact, nothing of the old one.
    await post_event(stack.api, cid, "page_viewed", path="/")
    back = await stack.api.get(f"/v1/contacts/{cid}")
    assert back.status_code == 200
    assert back.json()["email"] is None and back.json()["attributes"] == {}
    assert (await stack.api.delete(f"/v1/contacts/{cid}")).status_code == 200


async def _scored(database: Database, contact_id: str) -> int:
    async with database.session() as session:
        query = select(ScoreChange).where(ScoreChange.contact_id == contact_id)
        return len((await session.exec(query)).all())


async def _count(stack: Stack, address: str) -> int:
    return len(stack.mail.to(address))


def _sent(stack: Stack, address: str) -> list[Any]:
    return [str(m["Message-ID"]) for m in stack.mail.to(address)]


async def test_without_temporal_the_erasure_answers_503_and_deletes_nothing(
    database: Database, settings: Settings
) -> None:
    """Workflows are ended first: an erasure that cannot end them must not half-happen."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = await Client.connect(f"127.0.0.1:{port}", lazy=True)
    person = Person()
    await database.insert_once(Contact(contact_id=person.contact_id, email=person.email))
    async with (
        running_app(settings, client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as api,
    ):
        answer = await api.delete(f"/v1/contacts/{person.contact_id}")
    assert answer.status_code == 503, answer.text
    assert "Retry-After" in answer.headers
    async with database.session() as session:
        assert await session.get(Contact, person.contact_id) is not None
