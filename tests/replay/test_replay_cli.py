"""`journeyman replay` as the command line runs it: options, output and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from io import StringIO

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.cli import load_settings
from journeyman.replay_cli import add_replay_command, replay_command, run_replay_command
from tests.replay.conftest import Running
from tests.replay.probe_journeys import BROKEN_CODE, PROBE, PROBE_CODE


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="journeyman")
    add_replay_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["replay", *argv])


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def test_json_report_of_a_clean_replay_exits_0(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    args = parse("--journey", PROBE, "--json", "--temporal-address", address(dev_env))
    out = StringIO()

    code = await replay_command(args, load_settings(args), workflows=PROBE_CODE, stdout=out)

    report = json.loads(out.getvalue())
    assert code == 0
    assert (report["ok"], report["checked"], report["failed"]) == (True, 3, 0)
    assert {o["workflow_id"] for o in report["outcomes"]} == set(running.probes)
    assert {o["status"] for o in report["outcomes"]} == {"ok"}


async def test_a_broken_copy_exits_1_and_prints_the_offending_workflow_ids(
    dev_env: WorkflowEnvironment, running: Running
) -> None:
    args = parse("--journey", PROBE, "--temporal-address", address(dev_env))
    out = StringIO()

    code = await replay_command(args, load_settings(args), workflows=BROKEN_CODE, stdout=out)

    text = out.getvalue()
    lines = text.splitlines()
    assert code == 1
    assert "2 of 3 failed to replay" in text
    assert set(running.v1) <= set(lines)
    assert running.v2[0] not in lines  # in the summary only by type, never as offending


async def test_the_version_filter_in_json(dev_env: WorkflowEnvironment, running: Running) -> None:
    args = parse(
        "--journey", PROBE, "--version", "2", "--json", "--temporal-address", address(dev_env)
    )
    out = StringIO()

    code = await replay_command(args, load_settings(args), workflows=BROKEN_CODE, stdout=out)

    report = json.loads(out.getvalue())
    assert code == 0
    assert [(o["workflow_id"], o["version"]) for o in report["outcomes"]] == [(running.v2[0], 2)]


async def test_the_registered_command_replays_against_the_current_code(
    dev_env: WorkflowEnvironment, running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    # The checkout has no replay_probe: the command must refuse to call this deploy safe.
    args = parse("--journey", PROBE, "--json", "--temporal-address", address(dev_env))

    code = await asyncio.to_thread(run_replay_command, args, load_settings(args))

    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(report["failed_workflow_ids"]) == set(running.probes)


async def test_no_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = parse("--temporal-address", f"127.0.0.1:{port}")

    code = await asyncio.to_thread(run_replay_command, args, load_settings(args))

    assert code == 2
    assert f"cannot connect to Temporal at 127.0.0.1:{port}" in capsys.readouterr().err


async def test_an_unknown_namespace_exits_2(
    dev_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--namespace", "no-such-namespace", "--temporal-address", address(dev_env))

    code = await asyncio.to_thread(run_replay_command, args, load_settings(args))

    assert code == 2
    assert "no-such-namespace" in capsys.readouterr().err


def test_limit_and_version_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    for option in ("--limit", "--version"):
        with pytest.raises(SystemExit) as exited:
            parse(option, "0")
        assert exited.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err
