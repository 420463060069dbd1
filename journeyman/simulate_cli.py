"""`journeyman simulate <journey> --contact contact.json --events events.json [--html DIR]
[--json] [--start ISO]`: run a journey for a hypothetical contact and print the timeline.

Hooked into `journeyman.cli` with `add_simulate_command(subparsers)` and
`run_simulate_command` as the command's function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from journeyman.settings import Settings

EXAMPLE = """\
contact.json: {"email": "ada@example.com", "timezone": "Europe/Rome",
               "attributes": {"first_name": "Ada"}, "consent": {"email": true},
               "score": 0, "qualified": false, "segments": {"vip": true}}
events.json:  [{"name": "cart_abandoned", "after": "0", "properties": {"cart_id": "c1"}},
               {"name": "order_placed", "after": "2h", "properties": {"cart_id": "c1"}}]
An event at 0 that triggers the journey starts it; offsets are "2d3h"-style or ISO 8601."""


def add_simulate_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `journeyman simulate` on the `journeyman` command's subparsers."""
    parser = subparsers.add_parser(
        "simulate",
        help="run a journey for a hypothetical contact in skipped time and print the timeline",
        description="Run the newest version of JOURNEY in Temporal's time-skipping test server "
        "for the contact in --contact and the events in --events, with the real templates and "
        "send rules (consent, quiet hours, caps) but nothing sent, and print what happens when.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("journey", help="journey name, e.g. welcome_series")
    parser.add_argument(
        "--contact", type=Path, required=True, help="JSON file with the hypothetical contact"
    )
    parser.add_argument(
        "--events", type=Path, default=None, help="JSON file with a list of events (optional)"
    )
    parser.add_argument(
        "--html", type=Path, default=None, metavar="DIR", help="write each email's HTML here"
    )
    parser.add_argument("--json", action="store_true", help="print the timeline as JSON")
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=None,
        help="simulated start, ISO 8601 with a zone (default: now)",
    )
    return parser


def run_simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the command; 0 on success, 2 on bad input (said on stderr)."""
    from journeyman.simulate import (
        SimContact,
        SimEvent,
        SimulationInputError,
        SimulationUnavailableError,
        render_timeline,
        simulate,
    )
    from workflows.catalog import UnknownJourneyError, latest

    try:
        contact = SimContact.model_validate(_read_json(args.contact))
        raw_events = _read_json(args.events) if args.events else []
        events = TypeAdapter(list[SimEvent]).validate_python(raw_events)
    except (OSError, ValueError) as err:  # ValidationError is a ValueError
        return _fail(_say(err))
    try:
        simulation = asyncio.run(
            simulate(
                args.journey,
                contact,
                events,
                settings=settings,
                html_dir=args.html,
                start_at=args.start,
            )
        )
    except UnknownJourneyError:
        known = ", ".join(cls.name for cls in latest())
        return _fail(f"unknown journey '{args.journey}' (known: {known})")
    except (SimulationInputError, SimulationUnavailableError) as err:
        return _fail(str(err))
    if args.json:
        print(simulation.to_json())
    else:
        from rich.console import Console

        Console().print(render_timeline(simulation))
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON: {err}") from err


def _say(err: Exception) -> str:
    if isinstance(err, ValidationError):
        return "\n".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in err.errors()
        )
    return str(err)


def _fail(message: str) -> int:
    print(f"journeyman simulate: {message}", file=sys.stderr)
    return 2
