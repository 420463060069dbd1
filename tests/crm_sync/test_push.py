"""Outbound sync, driven one `push_due` at a time with an explicit clock, against the local
HubSpot: batching, no echo, outage, 429, validation failures, a change landing mid-push."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.crm import CrmConnector, CrmContact, UpsertOutcome
from activities.crm_sync import CrmSyncActivities
from journeyman.crm.contracts import PushRequest
from journeyman.crm.outbox import STARVATION_WINDOWS
from journeyman.settings import Settings
from persistence import Database
from persistence.models import utcnow
from tests.crm.fake_hubspot import FakeHubSpot
from tests.crm_sync.conftest import WINDOW, at, email_of
from tests.crm_sync.helpers import crm_id_of, local_change, outbox_row


async def test_ten_changes_within_the_window_become_one_call_with_the_latest_values(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    await local_change(database, contact_id, at=start, email=email_of(contact_id))
    for i in range(10):
        await local_change(
            database, contact_id, at=at(start, i), attributes={"company": f"Acme {i}"}
        )
    # Still changing (the last change is 9 s old at most): nothing goes yet.
    quiet = await sync.push_due(PushRequest(now=at(start, 9 + WINDOW.total_seconds() - 1)))
    assert quiet.pushed == 0
    assert hubspot.calls("/batch/upsert") == []
    assert quiet.next_check_at == at(start, 9 + WINDOW.total_seconds())

    result = await sync.push_due(PushRequest(now=at(start, 9 + WINDOW.total_seconds())))
    assert result.pushed == 1
    [call] = hubspot.calls("/batch/upsert")
    [sent] = call.json["inputs"]
    assert sent["properties"]["company"] == "Acme 9"
    stored = hubspot.contact(email_of(contact_id))
    assert stored is not None and stored.properties["company"] == "Acme 9"
    assert await outbox_row(database, contact_id) is None
    assert await crm_id_of(database, contact_id) == stored.id


async def test_a_contact_that_never_stops_changing_is_pushed_after_six_windows(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    await local_change(database, contact_id, at=start, email=email_of(contact_id))
    step = WINDOW.total_seconds() / 2
    moment = start
    while moment < start + WINDOW * STARVATION_WINDOWS:
        moment = at(moment, step)
        await local_change(database, contact_id, at=moment, phone=f"+1555{int(step)}")
        result = await sync.push_due(PushRequest(now=moment))
        if result.pushed:
            break
    assert moment >= start + WINDOW * STARVATION_WINDOWS
    assert len(hubspot.calls("/batch/upsert")) == 1


async def test_both_fields_go_only_when_their_latest_change_is_local(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    await local_change(
        database,
        contact_id,
        at=start,
        email=email_of(contact_id),
        lifecycle_stage="lead",
        attributes={"first_name": "Ada", "hubspot_owner_id": "77"},
    )
    await sync.push_due(PushRequest(now=start + WINDOW))
    [first] = hubspot.calls("/batch/upsert")
    properties = first.json["inputs"][0]["properties"]
    assert properties["lifecyclestage"] == "lead"
    assert properties["firstname"] == "Ada"
    # Pull-only fields never go out.
    assert "hubspot_owner_id" not in properties


async def test_a_crm_outage_delays_the_push_and_loses_nothing(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    await local_change(database, contact_id, at=start, email=email_of(contact_id), phone="+1")
    hubspot.outage = True
    for attempt in range(3):
        with pytest.raises(ApplicationError) as caught:
            await sync.push_due(PushRequest(now=start + WINDOW * (attempt + 1)))
        assert caught.value.type == "CrmUnavailable"
        assert not caught.value.non_retryable
    row = await outbox_row(database, contact_id)
    assert row is not None and row.status == "pending" and row.attempts == 3
    assert row.last_error and "503" in row.last_error
    # A change during the outage joins the same row.
    await local_change(database, contact_id, at=start + WINDOW * 3, phone="+2")
    hubspot.outage = False
    result = await sync.push_due(PushRequest(now=start + WINDOW * 5))
    assert result.pushed == 1
    stored = hubspot.contact(email_of(contact_id))
    assert stored is not None and stored.properties["phone"] == "+2"
    assert await outbox_row(database, contact_id) is None


async def test_a_429_is_retried_no_sooner_than_retry_after(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    await local_change(database, contact_id, at=start, email=email_of(contact_id))
    hubspot.fail_next(status=429, retry_after="7")
    with pytest.raises(ApplicationError) as caught:
        await sync.push_due(PushRequest(now=start + WINDOW))
    assert caught.value.type == "CrmRateLimited"
    assert caught.value.next_retry_delay == timedelta(seconds=7)
    assert not caught.value.non_retryable
    row = await outbox_row(database, contact_id)
    assert row is not None and row.status == "pending"
    assert (await sync.push_due(PushRequest(now=start + WINDOW))).pushed == 1


async def test_a_validation_error_is_recorded_and_not_retried_until_the_contact_changes(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    good = f"{contact_id}-ok"
    start = utcnow()
    await local_change(database, good, at=start, email=email_of(good))
    await local_change(database, contact_id, at=start, email="not-an-email")
    result = await sync.push_due(PushRequest(now=start + WINDOW))
    assert (result.pushed, result.failed) == (1, 1)
    row = await outbox_row(database, contact_id)
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert row.last_error and "hubspot" in row.last_error and "mail" in row.last_error.lower()
    calls = len(hubspot.calls("/batch/upsert"))
    again = await sync.push_due(PushRequest(now=start + WINDOW * 10))
    assert (again.pushed, again.failed) == (0, 0)
    assert len(hubspot.calls("/batch/upsert")) == calls
    # Fixing the address makes it a fresh change: quiet for a window, then pushed.
    fixed = start + WINDOW * 11
    await local_change(database, contact_id, at=fixed, email=email_of(contact_id))
    row = await outbox_row(database, contact_id)
    assert row is not None and row.status == "pending" and row.first_changed_at
    assert (await sync.push_due(PushRequest(now=fixed + WINDOW / 2))).pushed == 0
    assert (await sync.push_due(PushRequest(now=fixed + WINDOW))).pushed == 1


async def test_a_whole_batch_refused_is_recorded_on_each_row(
    sync: CrmSyncActivities, database: Database, hubspot: FakeHubSpot, contact_id: str
) -> None:
    start = utcnow()
    others = [f"{contact_id}-{i}" for i in range(3)]
    for other in others:
        await local_change(database, other, at=start, email=email_of(other))
    hubspot.fail_next(status=400)
    result = await sync.push_due(PushRequest(now=start + WINDOW))
    assert result.failed == 3
    for other in others:
        row = await outbox_row(database, other)
        assert row is not None and row.status == "failed"
        assert row.last_error and "400" in row.last_error


class _ChangesDuringTheCall:
    """The real connector, with a local change committed while the CRM call is in flight."""

    def __init__(self, inner: CrmConnector, database: Database, contact_id: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_batch = inner.max_batch
        self.database = database
        self.contact_id = contact_id

    async def upsert_contacts(self, contacts: Sequence[CrmContact]) -> list[UpsertOutcome]:
        await local_change(
            self.database, self.contact_id, at=utcnow(), attributes={"company": "Later Ltd"}
        )
        return await self.inner.upsert_contacts(contacts)

    async def create_task(self, task: object) -> str:
        raise AssertionError("no tasks here")


async def test_a_change_landing_during_a_push_stays_pending(
    database: Database,
    settings: Settings,
    connector: CrmConnector,
    hubspot: FakeHubSpot,
    contact_id: str,
    clean_crm: None,
) -> None:
    racing = _ChangesDuringTheCall(connector, database, contact_id)
    sync = CrmSyncActivities(database=database, settings=settings, connector=racing)
    start = utcnow() - WINDOW
    await local_change(
        database, contact_id, at=start, email=email_of(contact_id), attributes={"company": "A"}
    )
    result = await sync.push_due(PushRequest(now=utcnow()))
    assert result.pushed == 1
    stored = hubspot.contact(email_of(contact_id))
    assert stored is not None and stored.properties["company"] == "A"
    row = await outbox_row(database, contact_id)
    assert row is not None and row.status == "pending"
    # The next push sends the change that landed mid-push.
    sync = CrmSyncActivities(database=database, settings=settings, connector=connector)
    await sync.push_due(PushRequest(now=utcnow() + WINDOW))
    stored = hubspot.contact(email_of(contact_id))
    assert stored is not None and stored.properties["company"] == "Later Ltd"
    assert await outbox_row(database, contact_id) is None


async def test_every_mark_moves_changed_at_forward_even_with_an_old_timestamp(
    database: Database, contact_id: str, clean_crm: None
) -> None:
    """A push settles a row only if changed_at is what it read: a mark stamped with the same
    or an older time (an event's own timestamp) must still move it."""
    start = utcnow()
    await local_change(database, contact_id, at=start, email=email_of(contact_id))
    first = await outbox_row(database, contact_id)
    assert first is not None and first.changed_at == first.first_changed_at
    await local_change(database, contact_id, at=start, phone="+1")
    second = await outbox_row(database, contact_id)
    await local_change(database, contact_id, at=start - timedelta(hours=1), phone="+2")
    third = await outbox_row(database, contact_id)
    assert second is not None and third is not None
    assert first.changed_at < second.changed_at < third.changed_at
    assert third.first_changed_at == first.first_changed_at


async def test_a_backlog_goes_in_batches_of_the_configured_size(
    database: Database,
    settings: Settings,
    connector: CrmConnector,
    hubspot: FakeHubSpot,
    contact_id: str,
    clean_crm: None,
) -> None:
    small = settings.model_copy(update={"crm_batch_size": 2})
    sync = CrmSyncActivities(database=database, settings=small, connector=connector)
    start = utcnow()
    contacts = [f"{contact_id}-{i}" for i in range(5)]
    for contact in contacts:
        await local_change(database, contact, at=start, email=email_of(contact))
    results = [await sync.push_due(PushRequest(now=start + WINDOW)) for _ in range(3)]
    assert [(r.pushed, r.more_due) for r in results] == [(2, True), (2, True), (1, False)]
    assert [len(call.json["inputs"]) for call in hubspot.calls("/batch/upsert")] == [2, 2, 1]
    assert all(hubspot.contact(email_of(contact)) for contact in contacts)
