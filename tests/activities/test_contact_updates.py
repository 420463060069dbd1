"""The update_contact activity against the real database: merge, dormancy, CRM marks, repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.contact_updates import ContactUpdateActivities, contact_update_parts
from journeyman.settings import Settings
from persistence import Contact, CrmFieldState, CrmOutbox, Database
from persistence.models import as_utc
from workflows.contracts import ContactUpdate, ContactUpdateResult

from .conftest import AddContact
from .sends import Clock

run = ActivityEnvironment().run
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def updater(database: Database, clock: Clock, **settings: Any) -> ContactUpdateActivities:
    return ContactUpdateActivities(database=database, settings=Settings(**settings), clock=clock)


async def contact(database: Database, contact_id: str) -> Contact:
    async with database.session() as session:
        found = await session.get(Contact, contact_id)
    assert found is not None
    return found


async def crm_marks(database: Database, contact_id: str) -> tuple[bool, list[str]]:
    async with database.session() as session:
        outbox = await session.get(CrmOutbox, contact_id)
        fields = (
            await session.exec(
                select(CrmFieldState.field).where(col(CrmFieldState.contact_id) == contact_id)
            )
        ).all()
    return outbox is not None, sorted(fields)


async def test_attributes_merge_and_a_none_value_removes_one(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact(attributes={"plan": "pro", "coupon": "X1", "city": "Rome"})
    acts = updater(database, Clock(T0))

    result = await run(
        acts.update_contact,
        ContactUpdate(contact_id, attributes={"plan": "team", "coupon": None, "city": "Rome"}),
    )

    assert result == ContactUpdateResult(
        contact_id, changed=["attributes.coupon", "attributes.plan"]
    )
    row = await contact(database, contact_id)
    assert row.attributes == {"plan": "team", "city": "Rome"}
    assert as_utc(row.updated_at) == T0


async def test_a_repeated_update_changes_nothing_the_second_time(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    acts = updater(database, Clock(T0))
    change = ContactUpdate(contact_id, attributes={"birthday_email_year": 2026}, dormant=True)

    first = await run(acts.update_contact, change)
    second = await run(acts.update_contact, change)

    assert first.changed == ["attributes.birthday_email_year", "dormant"]
    assert second == ContactUpdateResult(contact_id, changed=[])
    assert (await contact(database, contact_id)).attributes == {"birthday_email_year": 2026}


async def test_dormant_keeps_the_first_moment_and_false_clears_it(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    clock = Clock(T0)
    acts = updater(database, clock)

    await run(acts.update_contact, ContactUpdate(contact_id, dormant=True, reason="test"))
    clock.now = T0 + timedelta(days=8)
    again = await run(acts.update_contact, ContactUpdate(contact_id, dormant=True))
    dormant_at = (await contact(database, contact_id)).dormant_at
    cleared = await run(acts.update_contact, ContactUpdate(contact_id, dormant=False))
    untouched = await run(acts.update_contact, ContactUpdate(contact_id, dormant=None))

    assert again.changed == []
    assert dormant_at is not None and as_utc(dormant_at) == T0
    assert cleared.changed == ["dormant"]
    assert untouched.changed == []
    assert (await contact(database, contact_id)).dormant_at is None


async def test_changed_attributes_the_crm_pushes_are_marked_for_the_sync(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    # company is pushed by the default mapping; birthday_email_year is not mapped at all.
    acts = updater(database, Clock(T0))

    await run(
        acts.update_contact,
        ContactUpdate(contact_id, attributes={"company": "Acme", "birthday_email_year": 2026}),
    )

    assert await crm_marks(database, contact_id) == (True, ["attributes.company"])


async def test_unmapped_changes_and_dormancy_leave_the_crm_alone(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    acts = updater(database, Clock(T0))

    await run(
        acts.update_contact,
        ContactUpdate(contact_id, attributes={"birthday_email_year": 2026}, dormant=True),
    )

    assert await crm_marks(database, contact_id) == (False, [])


async def test_a_field_mapped_by_the_setting_is_marked(
    database: Database, add_contact: AddContact
) -> None:
    contact_id = await add_contact()
    acts = updater(database, Clock(T0), crm_fields="attributes.birthday_email_year>bday_year:push")

    await run(acts.update_contact, ContactUpdate(contact_id, attributes={"birthday_email_year": 1}))

    assert await crm_marks(database, contact_id) == (True, ["attributes.birthday_email_year"])


async def test_an_unknown_contact_is_not_created(database: Database) -> None:
    acts = updater(database, Clock(T0))

    result = await run(
        acts.update_contact, ContactUpdate("c-nobody", attributes={"x": 1}, dormant=True)
    )

    assert result == ContactUpdateResult("c-nobody", changed=[])
    async with database.session() as session:
        assert await session.get(Contact, "c-nobody") is None


def test_the_worker_parts_register_the_activity(database: Database) -> None:
    parts = contact_update_parts(database, Settings())

    assert parts.workflows == []
    [activity_fn] = parts.activities
    assert getattr(activity_fn, "__temporal_activity_definition").name == "update_contact"
