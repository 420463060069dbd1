"""The `journeyman` command: `dev`, `worker`, `api` and `migrate`.

Options that name a setting override its `JOURNEYMAN_*` environment variable for this run;
everything not given on the command line comes from `Settings`, which reads the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from journeyman.settings import Settings

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
    _add_storage_options(api)
    _add_temporal_options(api)

    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date (idempotent)",
        description="Run the Alembic migrations on the configured database.",
    )
    _add_storage_options(migrate)
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

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from persistence import migrate

    migrate(settings.database_url_resolved)
    print(f"journeyman: database is up to date ({_safe_url(settings.database_url_resolved)})")
    return 0


COMMANDS = {"dev": _dev, "worker": _worker, "api": _api, "migrate": _migrate}


def _configure_logging(level: str) -> None:
    # Libraries stay at WARNING (Alembic and httpx are chatty at INFO); our own code and
    # the migration steps speak at the chosen level.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in (*OUR_PACKAGES, "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(level)


def _port_of(address: str, default: int) -> int:
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else default


def _safe_url(url: str) -> str:
    # Never echo a database password to a terminal or a log.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
