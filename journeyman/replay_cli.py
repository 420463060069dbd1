"""`journeyman replay`: the check to run before a deploy.

Fetches the histories of running enrollments from Temporal (optionally one journey and/or
version) and replays them against the code of this checkout. Exit codes: 0 every one replayed,
1 some failed (their workflow ids are printed: deploying would break them), 2 Temporal could
not be reached or asked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from journeyman.settings import Settings

# Only names for annotations here: the `journeyman` parser is built on every run, `--help`
# included, and must not load Temporal, rich and every workflow module to do it.
if TYPE_CHECKING:
    from rich.console import Console

    from journeyman.replay import ProgressCallback, ReplayReport

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_replay_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `journeyman replay` on the `journeyman` command's subparsers."""
    parser = subparsers.add_parser(
        "replay",
        help="replay running enrollments against this code: the check before a deploy",
        description="Fetch the histories of running enrollments from Temporal and replay "
        "them against the journeys in this checkout. Exits 0 when every one replays, 1 when "
        "some would break (their workflow ids are printed), 2 when Temporal cannot be asked. "
        "Without --journey every running workflow of the namespace is checked, the lead "
        "scorers and the CRM sync included.",
    )
    parser.add_argument(
        "--journey", metavar="NAME", default=None, help="only enrollments of this journey"
    )
    parser.add_argument(
        "--version",
        metavar="N",
        type=_positive,
        default=None,
        help="only enrollments on this version",
    )
    parser.add_argument(
        "--contact", metavar="ID", default=None, help="only this contact's enrollments"
    )
    parser.add_argument(
        "--limit",
        metavar="N",
        type=_positive,
        default=None,
        help="check at most this many (default all)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        type=_positive,
        default=None,
        help="how many histories are fetched from Temporal at once",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    # `dest` names the setting, so the CLI's settings loader applies them as overrides.
    parser.add_argument(
        "--temporal-address",
        dest="temporal_address",
        metavar="HOST:PORT",
        default=None,
        help="Temporal frontend host:port (env JOURNEYMAN_TEMPORAL_ADDRESS)",
    )
    parser.add_argument(
        "--namespace",
        dest="temporal_namespace",
        metavar="NAMESPACE",
        default=None,
        help="Temporal namespace (env JOURNEYMAN_TEMPORAL_NAMESPACE)",
    )
    return parser


def run_replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """The command as `journeyman.cli.COMMANDS` runs it."""
    return asyncio.run(replay_command(args, settings))


async def replay_command(
    args: argparse.Namespace,
    settings: Settings,
    *,
    workflows: Sequence[type] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Connect, replay, print; `workflows` replaces the current code (tests pass a broken
    copy)."""
    from rich.console import Console
    from temporalio.service import RPCError

    from journeyman.replay import DEFAULT_CONCURRENCY, replay_running
    from journeyman.temporal import connect

    out = Console(file=stdout or sys.stdout, highlight=False)
    err = Console(file=stderr or sys.stderr, highlight=False)
    try:
        client = await connect(settings)
    except RuntimeError as error:
        err.print(f"journeyman replay: cannot connect to Temporal at {settings.temporal_address}")
        err.print(str(error), markup=False)
        return EXIT_UNREACHABLE
    show_progress = out.is_terminal and not args.json
    try:
        with _progress_bar(out, enabled=show_progress) as progress:
            report = await replay_running(
                client,
                journey=args.journey,
                version=args.version,
                contact_id=args.contact,
                limit=args.limit,
                workflows=workflows,
                concurrency=args.concurrency or DEFAULT_CONCURRENCY,
                progress=progress,
            )
    except RPCError as error:
        err.print(
            f"journeyman replay: Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace}) refused the query: {error.message}",
            markup=False,
        )
        return EXIT_UNREACHABLE
    if args.json:
        (stdout or sys.stdout).write(report.to_json() + "\n")
    else:
        _print_report(out, report)
    return EXIT_OK if report.ok else EXIT_FAILED


@contextmanager
def _progress_bar(console: Console, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar in a terminal; none elsewhere (pipes, CI logs, --json)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from journeyman.replay import ReplayOutcome

    if not enabled:
        yield None
        return
    columns = (
        TextColumn("Replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("replay", total=None, failed=0)
        failed = 0

        def advance(outcome: ReplayOutcome, done: int, total: int) -> None:
            nonlocal failed
            failed += outcome.status == "failed"
            progress.update(task, completed=done, total=total, failed=failed)

        yield advance


def _print_report(console: Console, report: ReplayReport) -> None:
    from rich.table import Table

    if not report.outcomes:
        console.print("No running workflows matched: nothing to replay.")
        return
    summary = Table(title="Replayed against this code")
    for column in ("Workflow type", "Journey", "Version", "Checked", "Failed"):
        summary.add_column(column, justify="right" if column in ("Checked", "Failed") else "left")
    for row in report.by_type():
        summary.add_row(
            row.workflow_type,
            row.journey or "-",
            str(row.version) if row.version is not None else "-",
            str(row.checked),
            f"[red]{row.failed}[/red]" if row.failed else "0",
        )
    console.print(summary)
    if report.skipped:
        console.print(f"{report.skipped} running workflow(s) of other types skipped.")
    if report.limited:
        console.print(
            f"[yellow]Checked {len(report.outcomes)} of {report.matched} running "
            "(--limit): the rest were not replayed.[/yellow]"
        )
    if report.ok:
        console.print(f"[green]All {report.checked} replayed: safe to deploy.[/green]")
        return
    failures = Table(title="Would break on deploy", show_lines=True)
    failures.add_column("Workflow id", overflow="fold")
    failures.add_column("Type")
    failures.add_column("Error", overflow="fold")
    for outcome in report.failures:
        failures.add_row(outcome.workflow_id, outcome.workflow_type, _first_line(outcome.error))
    console.print(failures)
    console.print(
        f"[red]{report.failed} of {report.checked} failed to replay.[/red] Offending workflow ids:"
    )
    for outcome in report.failures:
        # One id per line, unstyled: easy to grep or paste into `temporal workflow show`.
        console.print(outcome.workflow_id, markup=False, soft_wrap=True)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text and text.strip() else ""
