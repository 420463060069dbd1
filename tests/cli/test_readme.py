"""The README's settings table and commands stay in step with the code."""

from __future__ import annotations

import re

from journeyman.cli import build_parser
from journeyman.settings import PROJECT_ROOT, Settings
from tests.cli.test_cli import COMMANDS

README = (PROJECT_ROOT / "README.md").read_text()


def test_readme_table_lists_every_setting_and_nothing_else() -> None:
    listed = set(re.findall(r"^\| `JOURNEYMAN_(\w+)` \|", README, re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}


def test_readme_names_every_subcommand() -> None:
    help_text = build_parser().format_help()
    for command in COMMANDS:
        assert command in help_text
        assert f"`journeyman {command}" in README, command
