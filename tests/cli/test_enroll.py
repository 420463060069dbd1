"""`journeyman enroll`: the CLI starts a bulk enrollment through Temporal and the database
directly and follows it to the end (against the dev server; the bulk worker runs here, the
enrolled journeys wait unexecuted on a queue nobody polls, see tests/bulk/conftest.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.cli import build_parser, main
from persistence import Database
from tests.bulk.conftest import BulkSetup, bulk_setup, make_contacts


@pytest.fixture
def setup(dev_env: WorkflowEnvironment, database: Database, database_url: str) -> BulkSetup:
    return bulk_setup(dev_env.client, database, database_url)


def cli_args(setup: BulkSetup) -> list[str]:
    return [
        "--temporal-address",
        setup.client.service_client.config.target_host,
        "--database-url",
        setup.settings.database_url,
        "--task-queue",
        setup.settings.task_queue,
    ]


async def run_cli(*argv: str) -> int:
    # `main` runs its own event loop (asyncio.run): a thread of its own, like a process.
    return await asyncio.to_thread(main, list(argv))


async def test_enroll_a_json_file_and_print_the_final_progress(
    setup: BulkSetup, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await make_contacts(database, 12)
    path = tmp_path / "ids.json"
    path.write_text(json.dumps({"contact_ids": [*ids, "ghost"]}))
    async with setup.worker():
        code = await run_cli(
            "enroll", "welcome_series", "--file", str(path), "--rate", "40", "--json",
            *cli_args(setup),
        )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    progress = json.loads(out)
    assert progress["status"] == "completed"
    assert (progress["total"], progress["done"], progress["started"]) == (13, 13, 12)
    assert progress["skipped"] == {"unknown_contact": 1}
    assert progress["starts_per_second"] == 40.0
    assert progress["source"].startswith("list:")


async def test_enroll_a_csv_file_with_the_progress_bar(
    setup: BulkSetup, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await make_contacts(database, 6)
    path = tmp_path / "ids.csv"
    path.write_text("contact_id,name\n" + "".join(f"{i},x\n" for i in ids))
    async with setup.worker():
        code = await run_cli("enroll", "welcome_series", "--file", str(path), *cli_args(setup))
        again = await run_cli("enroll", "welcome_series", "--file", str(path), *cli_args(setup))
    out = capsys.readouterr().out
    assert (code, again) == (0, 0)
    assert "completed: 6/6 done (6 started, 0 skipped, 0 failed)" in out
    # The second time everyone is already enrolled (welcome_series allows no re-entry).
    assert "completed: 6/6 done (0 started, 6 skipped, 0 failed)" in out


async def test_no_wait_returns_the_id_at_once(
    setup: BulkSetup, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await make_contacts(database, 3)
    path = tmp_path / "ids.csv"
    path.write_text("\n".join(ids))
    # No worker: nothing runs it, yet the command returns with the id.
    code = await run_cli(
        "enroll", "welcome_series", "--file", str(path), "--no-wait", "--json", *cli_args(setup)
    )
    assert code == 0
    started = json.loads(capsys.readouterr().out)
    assert started["workflow_id"] == f"bulk:welcome_series:{started['id']}"
    await setup.client.get_workflow_handle(started["workflow_id"]).terminate("test over")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--segment", "inactive_30d"], "unknown journey 'nope'"),
        (["welcome_series", "--segment", "no_such"], "unknown segment 'no_such'"),
        (["welcome_series", "--file", "/nonexistent/ids.csv"], "No such file"),
    ],
)
async def test_bad_input_exits_2_with_a_message(
    setup: BulkSetup, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_cli("enroll", *args, *cli_args(setup))
    assert code == 2
    assert message in capsys.readouterr().err


async def test_segment_or_file_is_required() -> None:
    with pytest.raises(SystemExit) as exited:
        await run_cli("enroll", "welcome_series")
    assert exited.value.code == 2


def test_enroll_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["enroll", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--segment", "--file", "--rate", "--no-wait", "--json", "--task-queue"):
        assert option in out
    assert "enroll" in build_parser().format_help()
