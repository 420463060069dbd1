"""The `journeyman` command: `dev`, `worker`, `api`, `migrate`, `enroll`, `replay`,
`simulate`, `journeys`, `contact` and `exit`.

Options that name a setting override its `JOURNEYMAN_*` environment variable for this run;
everything not given on the command line comes from `Settings`, which reads the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from journeyman.ops_cli import add_ops_commands
from journeyman.replay_cli import add_replay_command
from journeyman.settings import Settings
from journeyman.simulate_cli import add_simulate_command

if TYPE_CHECKING:
    from journeyman.bulk import BulkEnrollmentService
    from workflows.contracts import BulkProgress

OUR_PACKAGES = ("journeyman", "activities", "api", "persistence", "workflows")


def _setting_help(name: str, text: str) -> str:
    info = Settings.model_fields[name]
    default = info.get_default(call_default_factory=True)
    shown = ",".join(default) if isinstance(default, list) else str(default)
    env = f"{Settings.model_config.get('env_prefix', '')}{name.upper()}"
    return f"{text} (env {env}; default {shown!r})"


def _add_setting(
    parser: argparse.ArgumentParser,
    flag: str,
    name: str,
    text: str,
    kind: Callable[[str], Any] = str,
) -> None:
    parser.add_argument(flag, dest=name, type=kind, default=None, help=_setting_help(name, text))


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    _add_setting(parser, "--data-dir", "data_dir", "where the SQLite database and dev state live")
    _add_setting(
        parser,
        "--database-url",
        "database_url",
        "sqlite:///... or postgresql+psycopg://...; empty means SQLite in the data directory",
    )


def _add_temporal_options(parser: argparse.ArgumentParser) -> None:
    _add_setting(parser, "--temporal-address", "temporal_address", "Temporal frontend host:port")
    _add_setting(parser, "--namespace", "temporal_namespace", "Temporal namespace")
    _add_setting(parser, "--task-queue", "task_queue", "task queue of the journeys")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeyman",
        description="Durable customer journeys on Temporal. Every setting can also be given "
        "as a JOURNEYMAN_* environment variable (see README).",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of Journeyman's own loggers (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser(
        "dev",
        help="run the whole stack locally: Temporal, worker, API, SMTP sink",
        description="Start the embedded stack (Temporal dev server, migrations, SMTP sink, "
        "worker, API) and stop it all on Ctrl-C. State is kept in the data directory, so the "
        "next start resumes where this one stopped.",
    )
    dev.add_argument("--api-port", type=int, default=8000, help="API port (default 8000)")
    dev.add_argument(
        "--temporal-port",
        type=int,
        default=None,
        help="Temporal frontend port (default the port of JOURNEYMAN_TEMPORAL_ADDRESS, 7233)",
    )
    dev.add_argument(
        "--ui-port", type=int, default=None, help="Temporal UI port (default temporal port + 1000)"
    )
    _add_setting(dev, "--smtp-port", "smtp_port", "port of the local SMTP sink", kind=int)
    _add_setting(dev, "--data-dir", "data_dir", "where the databases and the mail folder live")

    worker = commands.add_parser(
        "worker",
        help="run a worker: every journey version and the activities",
        description="Poll the task queue until SIGINT/SIGTERM, then finish in-flight work.",
    )
    _add_storage_options(worker)
    _add_temporal_options(worker)

    api = commands.add_parser(
        "api", help="serve the HTTP API with uvicorn", description="Serve the HTTP API."
    )
    api.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    api.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: a line per event at campaign peaks costs CPU "
        "the intake needs; /metrics counts ingested and routed events)",
    )
    _add_storage_options(api)
    _add_temporal_options(api)

    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date (idempotent)",
        description="Run the Alembic migrations on the configured database.",
    )
    _add_storage_options(migrate)

    enroll = commands.add_parser(
        "enroll",
        help="enroll a segment or a list of contacts in a journey, with a live progress bar",
        description="Start a bulk enrollment (the same as POST /v1/journeys/{name}/"
        "bulk-enrollments) through Temporal and the database directly, then show its progress "
        "until it finishes. Contacts already enrolled and ids that are no contact are skipped. "
        "Exits 1 if the bulk enrollment failed.",
    )
    enroll.add_argument("journey", help="the journey's name")
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("--segment", help="enroll this segment's members")
    source.add_argument(
        "--file",
        help="enroll the ids in this file: CSV (one id per line, or a header with a "
        'contact_id column) or .json (a list of ids, or {"contact_ids": [...]})',
    )
    enroll.add_argument(
        "--rate",
        type=float,
        default=None,
        help="starts per second (default JOURNEYMAN_BULK_STARTS_PER_SECOND)",
    )
    enroll.add_argument(
        "--no-wait", action="store_true", help="start it, print its id and return at once"
    )
    enroll.add_argument(
        "--json", action="store_true", help="no progress bar: print the final progress as JSON"
    )
    _add_storage_options(enroll)
    _add_temporal_options(enroll)
    add_replay_command(commands)
    add_simulate_command(commands)
    add_ops_commands(
        commands,
        storage_options=_add_storage_options,
        temporal_options=_add_temporal_options,
    )
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    overrides = {
        name: value
        for name, value in vars(args).items()
        if name in Settings.model_fields and value is not None
    }
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        settings = load_settings(args)
    except ValidationError as err:
        parser.exit(2, f"journeyman: invalid settings:\n{err}\n")
    _redact_logs(settings)
    run: Callable[[argparse.Namespace, Settings], int] = COMMANDS[args.command]
    return run(args, settings)


# Each command imports what it runs only when chosen: `--help` stays quick, and the worker
# never loads the web stack (nor the API the worker's).


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.dev import DevPorts, run_dev

    temporal_port = args.temporal_port or _port_of(settings.temporal_address, 7233)
    ports = DevPorts(
        api=args.api_port,
        temporal=temporal_port,
        ui=args.ui_port or temporal_port + 1000,
        smtp=settings.smtp_port,
    )
    return run_dev(settings, ports)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker import run_worker

    asyncio.run(run_worker(settings))
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.main import create_app

    # uvloop and httptools (uvicorn[standard]) spend less CPU per request than asyncio's loop
    # and the pure-Python h11 parser; "auto" would silently fall back without them.
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=args.access_log,
        loop="uvloop",
        http="httptools",
    )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from persistence import migrate

    migrate(settings.database_url_resolved)
    print(f"journeyman: database is up to date ({_safe_url(settings.database_url_resolved)})")
    return 0


def _enroll(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from journeyman.bulk import BulkInputError, parse_id_file

    contact_ids: list[str] | None = None
    if args.file:
        path = Path(args.file)
        try:
            contact_ids = parse_id_file(path.name, path.read_bytes())
        except (OSError, BulkInputError) as err:
            print(f"journeyman enroll: {err}", file=sys.stderr)
            return 2
    return asyncio.run(_run_enroll(args, settings, contact_ids))


# How often the progress bar asks for the progress.
PROGRESS_POLL_SECONDS = 0.5


async def _run_enroll(
    args: argparse.Namespace, settings: Settings, contact_ids: list[str] | None
) -> int:
    from rich.console import Console

    from journeyman.bulk import BulkEnrollmentService, BulkInputError, summary
    from journeyman.segments import UnknownSegmentError
    from journeyman.temporal import connect
    from persistence import create_database
    from workflows.catalog import UnknownJourneyError

    errors = Console(stderr=True)
    try:
        client = await connect(settings)
    except RuntimeError as err:
        errors.print(f"journeyman enroll: Temporal at {settings.temporal_address}: {err}")
        return 1
    database = create_database(settings.database_url_resolved)
    try:
        service = BulkEnrollmentService(client=client, database=database, settings=settings)
        try:
            started = await service.start(
                args.journey,
                segment=args.segment,
                contact_ids=contact_ids,
                starts_per_second=args.rate,
                requested_by="cli",
            )
        except UnknownJourneyError:
            errors.print(f"journeyman enroll: unknown journey '{args.journey}'")
            return 2
        except (UnknownSegmentError, BulkInputError) as err:
            errors.print(f"journeyman enroll: {err}")
            return 2
        if args.no_wait:
            if args.json:
                print(json.dumps({"id": started.id, "workflow_id": started.workflow_id}))
            else:
                print(f"Started bulk enrollment {started.id} ({started.workflow_id})")
            return 0
        progress = await _follow(service, started.journey, started.id, bar=not args.json)
    finally:
        await database.dispose()
    if args.json:
        print(json.dumps(dataclasses.asdict(progress), default=str, indent=2))
    else:
        Console().print(summary(progress))
    return 0 if progress.status == "completed" else 1


async def _follow(
    service: BulkEnrollmentService, journey: str, bulk_id: str, *, bar: bool
) -> BulkProgress:
    """Poll the progress until the bulk enrollment ends; with `bar`, draw it live."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from journeyman.bulk import ProgressUnavailableError

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s  ETA {task.fields[eta]}  {task.fields[skipped]}"),
    )
    with Progress(*columns, disable=not bar, transient=False) as shown:
        task = shown.add_task(journey, total=None, rate=0.0, eta="?", skipped="")
        while True:
            try:
                progress = await service.progress(journey, bulk_id)
            except ProgressUnavailableError:
                await asyncio.sleep(PROGRESS_POLL_SECONDS)
                continue
            skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(progress.skipped.items()))
            shown.update(
                task,
                total=progress.total,
                completed=progress.done,
                rate=progress.rate,
                eta="-" if progress.eta_seconds is None else f"{progress.eta_seconds:.0f}s",
                skipped=f"skipped: {skipped}" if skipped else "",
            )
            if progress.status != "running":
                return progress
            await asyncio.sleep(PROGRESS_POLL_SECONDS)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.replay_cli import run_replay_command

    return run_replay_command(args, settings)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.simulate_cli import run_simulate_command

    return run_simulate_command(args, settings)


def _journeys(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.ops_cli import run_journeys_command

    return run_journeys_command(args, settings)


def _contact(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.ops_cli import run_contact_command

    return run_contact_command(args, settings)


def _exit(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.ops_cli import run_exit_command

    return run_exit_command(args, settings)


COMMANDS = {
    "dev": _dev,
    "worker": _worker,
    "api": _api,
    "migrate": _migrate,
    "enroll": _enroll,
    "replay": _replay,
    "simulate": _simulate,
    "journeys": _journeys,
    "contact": _contact,
    "exit": _exit,
}


def _configure_logging(level: str) -> None:
    # Libraries stay at WARNING (Alembic and httpx are chatty at INFO); our own code and
    # the migration steps speak at the chosen level.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in (*OUR_PACKAGES, "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(level)


def _redact_logs(settings: Settings) -> None:
    # A provider's refusal quotes the address or number it refused, and the SDK logs a failed
    # activity's exception before the failure converter scrubs it for the history: every
    # handler writes scrubbed lines, this process's configured secrets included.
    from journeyman.redaction import RedactingFilter, Redactor

    scrubbing = RedactingFilter(Redactor.from_settings(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrubbing)


def _port_of(address: str, default: int) -> int:
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else default


def _safe_url(url: str) -> str:
    # Never echo a database password to a terminal or a log.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
