"""`journeyman journeys`, `contact` and `exit` on the Temporal dev server and the real
database: a contact enrolled in the real welcome_series, run by a worker whose sends are
captured, seen and ended from the command line."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from journeyman.cli import main
from journeyman.enrollments import ContactEnrollment, EnrollmentService
from journeyman.ops_cli import _now
from journeyman.settings import Settings
from persistence import Contact, Database, Enrollment, LeadScore, Message
from tests.api.helpers import SentMessages, eventually
from tests.support import capturing_worker
from workflows.contracts import EnrollmentState, Event, StartJourneyRequest, workflow_id_for

pytestmark = pytest.mark.integration

JOURNEY = "welcome_series"


@pytest.fixture
def settings(database_url: str, task_queue: str) -> Settings:
    return Settings(database_url=database_url, task_queue=task_queue)


@pytest.fixture
async def sent(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> AsyncIterator[SentMessages]:
    async with capturing_worker(dev_env.client, database, settings) as captured:
        yield captured


@pytest.fixture
def service(
    dev_env: WorkflowEnvironment, database: Database, settings: Settings
) -> EnrollmentService:
    return EnrollmentService(client=dev_env.client, database=database, settings=settings)


@pytest.fixture
def cli_options(dev_env: WorkflowEnvironment, settings: Settings) -> list[str]:
    return [
        "--temporal-address",
        dev_env.client.service_client.config.target_host,
        "--database-url",
        settings.database_url,
        "--task-queue",
        settings.task_queue,
    ]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(cli_options: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    async def run(*argv: str) -> Ran:
        capsys.readouterr()  # only this command's output
        # `main` runs its own event loop (asyncio.run): a thread of its own, like a process.
        # `journeys` reads the database alone: no Temporal options.
        options = cli_options[2:4] if argv[0] == "journeys" else cli_options
        code = await asyncio.to_thread(main, [*argv, *options])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


async def new_contact(database: Database, **fields: Any) -> str:
    contact_id = f"ops-{uuid.uuid4().hex[:10]}"
    values = {"email": f"{contact_id}@example.com", "timezone": "Europe/Rome", **fields}
    await database.insert_once(Contact(contact_id=contact_id, **values))
    return contact_id


async def enroll_and_wait(service: EnrollmentService, contact_id: str) -> ContactEnrollment:
    """Enroll the contact in welcome_series and wait until it sits in its first pause (the
    welcome sent, two days to go), as the workflow itself says."""
    trigger = Event(
        id=f"ev-{uuid.uuid4().hex}",
        contact_id=contact_id,
        name="signed_up",
        occurred_at=datetime.now(UTC),
    )
    result = await service.start(
        StartJourneyRequest(journey=JOURNEY, contact_id=contact_id, trigger=trigger)
    )
    assert result.action == "started", result

    async def listed() -> list[ContactEnrollment]:
        return await service.contact_enrollments(contact_id)

    enrollments = await eventually(
        listed,
        lambda found: (
            len(found) == 1
            and found[0].live is not None
            and found[0].live.current_step == "pause_1"
        ),
    )
    return enrollments[0]


async def active_on(cli: Any, journey: str, version: int) -> int:
    ran = await cli("journeys", "--json")
    assert ran.code == 0, ran.err
    (row,) = [j for j in ran.json()["journeys"] if (j["name"], j["version"]) == (journey, version)]
    return int(row["active"])


async def test_contact_json_has_profile_score_live_enrollment_and_last_messages(
    database: Database, service: EnrollmentService, sent: SentMessages, cli: Any
) -> None:
    contact_id = await new_contact(
        database, lifecycle_stage="lead", sms_consent=False, phone="+390612345678"
    )
    await database.insert_once(
        LeadScore(contact_id=contact_id, points=62.0, as_of=datetime.now(UTC), qualified=True)
    )
    enrollment = await enroll_and_wait(service, contact_id)
    assert [request.step for request in sent if request.contact_id == contact_id] == ["welcome"]
    now = datetime.now(UTC)
    for n, (status, reason) in enumerate([("sent", None), ("suppressed", "quiet_hours")]):
        await database.insert_once(
            Message(
                message_id=f"{enrollment.workflow_id}:m{n}",
                workflow_id=enrollment.workflow_id,
                run_id=enrollment.run_id,
                journey=JOURNEY,
                step=f"step_{n}",
                contact_id=contact_id,
                channel="email",
                template="welcome_series/welcome",
                status=status,
                reason=reason,
                created_at=now + timedelta(seconds=n),
            )
        )

    ran = await cli("contact", contact_id, "--json", "--messages", "1")

    assert ran.code == 0, ran.err
    view = ran.json()
    profile = view["profile"]
    assert profile["contact_id"] == contact_id
    assert (profile["email"], profile["phone"]) == (f"{contact_id}@example.com", "+390612345678")
    assert (profile["timezone"], profile["lifecycle_stage"]) == ("Europe/Rome", "lead")
    assert profile["consent"] == {"email": True, "sms": False, "push": True}
    assert profile["dormant"] is False
    assert 61.9 < view["score"]["score"] <= 62.0  # decayed by the few seconds since
    assert view["score"]["qualified"] is True
    (listed,) = view["enrollments"]
    assert (listed["journey"], listed["version"], listed["status"]) == (JOURNEY, 1, "active")
    assert listed["workflow_id"] == workflow_id_for(JOURNEY, contact_id)
    live = listed["live"]
    assert live["current_step"] == "pause_1"
    # Two days from the welcome, in ISO 8601.
    until = datetime.fromisoformat(live["wait_until"])
    assert timedelta(days=2) - timedelta(minutes=1) < until - now < timedelta(days=2, minutes=1)
    assert [step["name"] for step in live["steps"]][:1] == ["welcome"]
    # Only the newest message, with its status and why.
    (message,) = view["messages"]
    assert (message["step"], message["status"], message["reason"]) == (
        "step_1",
        "suppressed",
        "quiet_hours",
    )
    datetime.fromisoformat(message["created_at"])


async def test_contact_tables_say_what_it_waits_for_and_why_a_message_was_suppressed(
    database: Database, service: EnrollmentService, sent: SentMessages, cli: Any
) -> None:
    contact_id = await new_contact(database, dormant_at=datetime.now(UTC))
    enrollment = await enroll_and_wait(service, contact_id)
    await database.insert_once(
        Message(
            message_id=f"{enrollment.workflow_id}:q",
            workflow_id=enrollment.workflow_id,
            run_id=enrollment.run_id,
            journey=JOURNEY,
            step="welcome",
            contact_id=contact_id,
            channel="email",
            template="welcome_series/welcome",
            status="suppressed",
            reason="quiet_hours",
        )
    )

    ran = await cli("contact", contact_id)

    assert ran.code == 0, ran.err
    text = " ".join(ran.out.split())
    assert f"Contact {contact_id}" in text
    assert "Dormant since" in text
    assert "0.0 (not qualified" in text  # never scored
    assert "pause_1, waiting until " in text
    assert "suppressed: quiet_hours" in text


async def test_journeys_counts_the_running_enrollment_as_active(
    database: Database, service: EnrollmentService, sent: SentMessages, cli: Any
) -> None:
    before = await active_on(cli, JOURNEY, 1)
    await enroll_and_wait(service, await new_contact(database))
    assert await active_on(cli, JOURNEY, 1) == before + 1

    ran = await cli("journeys")
    assert ran.code == 0
    text = " ".join(ran.out.split())
    assert "(newest)" in text and "signed_up" in text and "abandoned_cart" in text


async def test_journeys_json_lists_every_version_with_its_triggers(cli: Any) -> None:
    ran = await cli("journeys", "--json")
    assert ran.code == 0
    carts = {j["version"]: j for j in ran.json()["journeys"] if j["name"] == "abandoned_cart"}
    assert set(carts) >= {1, 2}
    newest = max(carts)
    assert [v for v, j in carts.items() if j["newest"]] == [newest]
    assert "cart_abandoned" in carts[newest]["triggers"]


async def test_exit_ends_the_enrollment_and_a_second_exit_finds_none_running(
    database: Database, service: EnrollmentService, sent: SentMessages, cli: Any
) -> None:
    contact_id = await new_contact(database)
    enrollment = await enroll_and_wait(service, contact_id)

    shown = await cli("contact", contact_id, "--json", "--messages", "0")
    assert shown.json()["messages"] == []
    assert [e["status"] for e in shown.json()["enrollments"]] == ["active"]

    ran = await cli("exit", contact_id, JOURNEY, "--reason", "support_ticket_42", "--json")

    assert ran.code == 0, ran.err
    assert ran.json() == {
        "journey": JOURNEY,
        "contact_id": contact_id,
        "exited": [enrollment.workflow_id],
    }

    async def row() -> Enrollment:
        async with database.session() as session:
            query = select(Enrollment).where(col(Enrollment.run_id) == enrollment.run_id)
            return (await session.exec(query)).one()

    ended = await eventually(row, lambda found: found.status != "active")
    assert (ended.status, ended.ended_by) == ("exited", "support_ticket_42")

    shown = await cli("contact", contact_id, "--json")
    (after,) = shown.json()["enrollments"]
    assert (after["status"], after["ended_by"], after["live"]) == (
        "exited",
        "support_ticket_42",
        None,
    )

    again = await cli("exit", contact_id, JOURNEY)
    assert again.code == 1
    assert f"no running enrollment of {JOURNEY} for contact '{contact_id}'" in again.err
    # Nothing more was sent after the welcome.
    assert [r.step for r in sent if r.contact_id == contact_id] == ["welcome"]


async def test_exit_prints_the_workflow_ids_it_told_to_exit(
    database: Database, service: EnrollmentService, sent: SentMessages, cli: Any
) -> None:
    contact_id = await new_contact(database)
    enrollment = await enroll_and_wait(service, contact_id)
    ran = await cli("exit", contact_id, JOURNEY)
    assert ran.code == 0, ran.err
    assert "Told 1 enrollment(s) to exit (operator)" in ran.out
    assert enrollment.workflow_id in ran.out.splitlines()


async def test_unknown_contact_exits_1(cli: Any) -> None:
    for argv in (("contact", "ops-nobody"), ("contact", "ops-nobody", "--json")):
        ran = await cli(*argv)
        assert ran.code == 1
        assert "no contact 'ops-nobody'" in ran.err
        assert ran.out == ""


async def test_unknown_journey_exits_2(cli: Any) -> None:
    ran = await cli("exit", "ops-anyone", "no_such_journey")
    assert ran.code == 2
    assert "unknown journey 'no_such_journey'" in ran.err
    assert "welcome_series" in ran.err  # the known ones are named


@pytest.mark.parametrize("command", ["journeys", "contact", "exit"])
def test_help_names_the_json_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "--json" in capsys.readouterr().out


def _enrollment(live: EnrollmentState | None, status: str = "active") -> ContactEnrollment:
    return ContactEnrollment(
        workflow_id="journey:abandoned_cart:c:k1",
        run_id="r",
        journey="abandoned_cart",
        version=2,
        contact_id="c",
        key="k1",
        status=status,
        ended_by="event:order_placed" if status != "active" else None,
        current_step="wait_for_order",
        entered_at=datetime(2026, 5, 1, tzinfo=UTC),
        ended_at=None,
        live=live,
    )


def test_now_says_what_a_running_enrollment_waits_for_or_what_ended_it() -> None:
    live = EnrollmentState(
        workflow_id="journey:abandoned_cart:c:k1",
        journey="abandoned_cart",
        version=2,
        contact_id="c",
        key="k1",
        status="active",
        current_step="wait_for_order",
        waiting_for=["order_placed"],
        wait_until=datetime(2026, 5, 2, 9, 0, tzinfo=UTC),
        steps=[],
    )
    assert _now(_enrollment(live)) == (
        "wait_for_order, waiting for order_placed until 2026-05-02 09:00:00 UTC"
    )
    # Running, but the workflow did not answer (no worker): the step the database recorded.
    assert _now(_enrollment(None)) == (
        "wait_for_order (live state unavailable: is a worker running?)"
    )
    assert _now(_enrollment(None, status="converted")) == "ended by event:order_placed"
