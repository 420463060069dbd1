"""How `journeyman dev` configures its children: one set of settings, passed through the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeyman.dev import (
    DevPorts,
    StartupError,
    data_dir_lock,
    dev_settings,
    settings_environment,
    temporal_server_command,
)
from journeyman.settings import Settings

PORTS = DevPorts(api=9000, temporal=7300, ui=8300, smtp=2525)


def test_children_rebuild_exactly_the_parents_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parent = Settings(
        data_dir=tmp_path,
        api_keys=["one", "two"],
        smtp_username="user",
        smtp_starttls=True,
        smtp_timeout_seconds=2.5,
        task_queue="tq",
    )
    environment = settings_environment(parent)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"JOURNEYMAN_{name.upper()}", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings() == parent


def test_dev_points_everything_at_the_embedded_services(tmp_path: Path) -> None:
    settings = dev_settings(
        Settings(data_dir=tmp_path / "rel", smtp_host="smtp.example.com", smtp_password="pw"),
        PORTS,
    )
    assert settings.temporal_address == "127.0.0.1:7300"
    # Mail never leaves the laptop, whatever SMTP server the environment named.
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_password) == (
        "127.0.0.1",
        2525,
        None,
    )
    assert settings.public_url == "http://localhost:9000"
    assert settings.data_dir.is_absolute()


def test_dev_keeps_a_public_url_that_was_set() -> None:
    settings = dev_settings(Settings(public_url="https://tunnel.example.com"), PORTS)
    assert settings.public_url == "https://tunnel.example.com"


def test_dev_turns_quiet_hours_off_unless_they_were_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dev_settings(Settings(), PORTS).quiet_hours == ""
    assert dev_settings(Settings(quiet_hours="22:00-07:00"), PORTS).quiet_hours == "22:00-07:00"
    monkeypatch.setenv("JOURNEYMAN_QUIET_HOURS", "21:00-08:00")
    assert dev_settings(Settings(), PORTS).quiet_hours == "21:00-08:00"


def test_temporal_server_is_file_backed_with_wal_and_our_search_attributes(
    tmp_path: Path,
) -> None:
    settings = dev_settings(Settings(data_dir=tmp_path), PORTS)
    command = " ".join(temporal_server_command(settings, PORTS, "temporal"))
    assert command.startswith("temporal server start-dev --ip 127.0.0.1 --port 7300 --ui-port 8300")
    assert f"--db-filename {tmp_path / 'temporal.db'}" in command
    assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in command
    assert (
        "--search-attribute JourneyName=Keyword --search-attribute JourneyVersion=Int "
        "--search-attribute ContactId=Keyword --search-attribute JourneyStep=Keyword"
    ) in command
    assert "--namespace" not in command  # "default" always exists


def test_a_second_stack_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path):
        second = data_dir_lock(tmp_path)
        with pytest.raises(StartupError, match="another"):
            second.__enter__()
    with data_dir_lock(tmp_path):  # released when the first stack stops
        pass
