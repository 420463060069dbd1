"""`journeyman simulate` as the CLI runs it: its own time-skipping server, files in, text out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from journeyman.settings import Settings
from journeyman.simulate_cli import add_simulate_command, run_simulate_command

CONTACT = {"email": "ada@example.com", "timezone": "UTC", "attributes": {"first_name": "Ada"}}
CART = {"cart_id": "c1", "items": [{"name": "Boots", "price": 120}]}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="journeyman")
    add_simulate_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_simulate_command(args, Settings())


def files(tmp_path: Path, contact: object, events: object) -> list[str]:
    (tmp_path / "contact.json").write_text(json.dumps(contact))
    (tmp_path / "events.json").write_text(json.dumps(events))
    return ["--contact", str(tmp_path / "contact.json"), "--events", str(tmp_path / "events.json")]


def test_json_output_is_the_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = [
        {"name": "cart_abandoned", "after": "0", "properties": CART},
        {"name": "order_placed", "after": "PT2H", "properties": {"cart_id": "c1"}},
    ]
    # 10:00 UTC: the first reminder at 11:00 is outside quiet hours.
    argv = ["simulate", "abandoned_cart", *files(tmp_path, CONTACT, events), "--json"]
    code = run([*argv, "--start", "2030-01-07T10:00:00+00:00", "--html", str(tmp_path / "html")])

    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["journey"], printed["status"], printed["ended_by"]) == (
        "abandoned_cart",
        "converted",
        "event:order_placed",
    )
    assert printed["started_at"] == "2030-01-07T10:00:00Z"
    sent = [e for e in printed["timeline"] if e["kind"] == "sent"]
    assert [(e["offset"], e["at"], e["subject"]) for e in sent] == [
        ("1h", "2030-01-07T11:00:00Z", "Still thinking about the Boots?")
    ]
    assert sent[0]["html_file"] == str(tmp_path / "html" / "first_reminder.html")
    assert (tmp_path / "html" / "first_reminder.html").exists()


def test_the_table_is_printed_without_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps to the terminal's width
    argv = ["simulate", "welcome_series", *files(tmp_path, CONTACT, [])]
    assert run([*argv, "--start", "2030-01-07T10:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "welcome_series v1" in out
    assert "Welcome to Journeyman, Ada" in out
    assert "completed" in out


@pytest.mark.parametrize(
    ("journey", "contact", "events", "message"),
    [
        ("no_such", CONTACT, [], "unknown journey 'no_such' (known: "),
        ("welcome_series", CONTACT, [{"name": "x", "after": "2 days"}], "bad offset '2 days'"),
        ("welcome_series", {"consent": {"fax": True}}, [], "unknown channel fax"),
        ("welcome_series", {"emial": "typo@example.com"}, [], "emial: Extra inputs"),
        ("welcome_series", CONTACT, {"name": "x"}, "Input should be a valid list"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    journey: str,
    contact: object,
    events: object,
    message: str,
) -> None:
    assert run(["simulate", journey, *files(tmp_path, contact, events)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["simulate", "welcome_series", "--contact", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
