"""`journeyman contact erase <id>`: the API's erasure from the command line, on the Temporal
dev server and the real database; `journeyman contact <id>` still shows a contact."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.cli import main
from journeyman.erasure import pseudonym
from journeyman.settings import Settings
from persistence import Contact, Database, EventRecord
from persistence.models import utcnow

pytestmark = pytest.mark.integration


@pytest.fixture
def options(dev_env: WorkflowEnvironment, database_url: str) -> list[str]:
    return [
        "--temporal-address",
        dev_env.client.service_client.config.target_host,
        "--database-url",
        database_url,
    ]


async def run(
    capsys: pytest.CaptureFixture[str], *argv: str, options: list[str]
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, [*argv, *options])
    out, err = capsys.readouterr()
    return code, out, err


async def test_contact_erase_removes_the_contact_and_prints_the_record(
    database: Database, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    contact_id = f"cli-{uuid.uuid4().hex[:10]}"
    await database.insert_once(Contact(contact_id=contact_id, email=f"{contact_id}@ex.example"))
    await database.insert_once(
        EventRecord(id=f"ev-{contact_id}", contact_id=contact_id, name="x", occurred_at=utcnow())
    )
    shown = await run(capsys, "contact", contact_id, "--json", options=options)
    assert shown[0] == 0 and json.loads(shown[1])["profile"]["contact_id"] == contact_id

    code, out, err = await run(capsys, "contact", "erase", contact_id, "--json", options=options)

    assert code == 0, err
    record = json.loads(out)
    assert record["pseudonym"] == pseudonym(contact_id, Settings().secret_key)
    assert (record["counts"]["contacts"], record["counts"]["events"]) == (1, 1)
    async with database.session() as session:
        assert await session.get(Contact, contact_id) is None
    # Again: the same record. In words, too.
    code, out, _ = await run(capsys, "contact", "erase", contact_id, options=options)
    assert code == 0 and record["pseudonym"] in out and "contacts: 1" in out
    # Never known: 1; two ids without `erase`: 4.
    code, _, err = await run(capsys, "contact", "erase", f"{contact_id}-x", options=options)
    assert code == 1 and "unknown contact" in err
    code, _, err = await run(capsys, "contact", contact_id, "other", options=options)
    assert code == 4 and "contact erase <id>" in err
