"""The `journeyman` command line: help for every command, options over the environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from journeyman.cli import build_parser, load_settings, main
from tests.conftest import binary

COMMANDS = [
    "dev",
    "worker",
    "api",
    "migrate",
    "enroll",
    "replay",
    "simulate",
    "journeys",
    "contact",
    "exit",
]


def test_console_script_lists_every_command() -> None:
    done = subprocess.run(
        [binary("journeyman"), "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: journeyman {command}")


def test_setting_options_name_their_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for variable in ("JOURNEYMAN_DATABASE_URL", "JOURNEYMAN_TEMPORAL_ADDRESS",
                     "JOURNEYMAN_TASK_QUEUE", "JOURNEYMAN_DATA_DIR"):  # fmt: skip
        assert variable in out


def test_an_option_overrides_the_environment_and_the_environment_fills_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYMAN_TASK_QUEUE", "from-env")
    monkeypatch.setenv("JOURNEYMAN_TEMPORAL_NAMESPACE", "ns-from-env")
    parser = build_parser()

    from_env = load_settings(parser.parse_args(["worker"]))
    assert (from_env.task_queue, from_env.temporal_namespace) == ("from-env", "ns-from-env")

    overridden = load_settings(parser.parse_args(["worker", "--task-queue", "from-flag"]))
    assert (overridden.task_queue, overridden.temporal_namespace) == ("from-flag", "ns-from-env")


def test_migrate_brings_a_new_sqlite_database_to_the_newest_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy

    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/journeyman.db")
    with engine.connect() as conn:
        tables = set(sqlalchemy.inspect(conn).get_table_names())
    engine.dispose()
    assert {"alembic_version", "contacts", "events", "enrollments", "messages"} <= tables
    assert "up to date" in capsys.readouterr().out


def test_invalid_settings_exit_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYMAN_ENV", "production")  # with the dev secret: refused
    with pytest.raises(SystemExit) as exited:
        main(["migrate"])
    assert exited.value.code == 2
    assert "JOURNEYMAN_SECRET_KEY" in capsys.readouterr().err
