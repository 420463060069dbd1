"""The operator's commands: `journeyman journeys`, `journeyman contact <id>` (and `journeyman
contact erase <id>`, see `journeyman.erasure`) and `journeyman exit <contact> <journey>`.

They read the database and Temporal directly with the settings (no API in between), like
`enroll`. `--json` prints machine-readable JSON (datetimes in ISO 8601); otherwise rich tables,
which rich prints as plain text when stdout is not a terminal.

Exit codes: 0 done; 1 an unknown contact (`contact`, `contact erase`) or no running enrollment
to exit (`exit`); 2 an unknown journey (`exit`); 3 Temporal could not be reached; 4 `contact`
given two ids without `erase`.

Hooked into `journeyman.cli` with `add_ops_commands(subparsers, ...)`; the `run_*_command`
functions are the commands' functions.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from journeyman.settings import Settings

# Only names for annotations here: the parser is built on every run, `--help` included, and
# must not load Temporal, the database layer and every journey to do it.
if TYPE_CHECKING:
    from rich.console import Console
    from temporalio.client import Client

    from journeyman.catalog_info import JourneyVersionInfo
    from journeyman.enrollments import ContactEnrollment
    from persistence import Database

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # unknown contact; no running enrollment to exit
EXIT_UNKNOWN_JOURNEY = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 4  # `contact` given two ids without `erase`
# `journeyman contact erase <id>`: the word that makes `contact` erase rather than show.
ERASE = "erase"
DEFAULT_MESSAGES = 10
# Table width when stdout is not a terminal.
PLAIN_WIDTH = 160

OptionAdder = Callable[[argparse.ArgumentParser], None]


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def add_ops_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    storage_options: OptionAdder,
    temporal_options: OptionAdder,
) -> None:
    """Register `journeys`, `contact` and `exit`; the option adders are the CLI's own (database
    and Temporal settings as overrides of the environment)."""
    journeys = subparsers.add_parser(
        "journeys",
        help="the catalog: every journey version, its triggers and active enrollments",
        description="List every journey version in the code (the newest, where new "
        "enrollments go, marked), its triggers and how many enrollments are active on it, "
        "from the database. A version gone from the code that still has active enrollments "
        "is listed too, marked as missing: those enrollments are stuck until it is put back.",
    )
    journeys.add_argument("--json", action="store_true", help="print the catalog as JSON")
    storage_options(journeys)

    contact = subparsers.add_parser(
        "contact",
        help="one contact: profile, lead score, enrollments with live state, last messages",
        description="Show a contact's profile (channels, timezone, lifecycle stage, consent, "
        "dormant), the lead score now and whether it is qualified, every enrollment with the "
        "live state of the running ones (current step, what it waits for and until when, "
        "asked from the workflow), and the last messages with their status and reason (e.g. "
        "`suppressed: quiet_hours`). Exits 1 for an unknown contact. "
        "`journeyman contact erase <id>` erases the contact instead (GDPR).",
    )
    contact.add_argument("contact_id", help="the contact's id (or `erase`, then the id)")
    contact.add_argument(
        "erase_id",
        nargs="?",
        metavar="ID",
        help="with `erase`: erase this contact (GDPR) as DELETE /v1/contacts/{id} does: end "
        "its workflows, delete or anonymise its rows, print the erasure record; exits 1 for "
        "an id never known nor erased",
    )
    contact.add_argument(
        "--messages",
        metavar="N",
        type=_count,
        default=DEFAULT_MESSAGES,
        help=f"how many of the newest messages to show (default {DEFAULT_MESSAGES})",
    )
    contact.add_argument("--json", action="store_true", help="print everything as JSON")
    storage_options(contact)
    temporal_options(contact)

    exit_ = subparsers.add_parser(
        "exit",
        help="end a contact's running enrollment(s) in a journey",
        description="Tell the contact's running enrollment in JOURNEY to exit (it ends with "
        "status `exited`, sending nothing more). For a keyed journey without --key, every "
        "running enrollment of the contact in it. Prints the workflow ids told to exit; "
        "exits 1 if none was running, 2 for an unknown journey.",
    )
    exit_.add_argument("contact_id", help="the contact's id")
    exit_.add_argument("journey", help="the journey's name")
    exit_.add_argument(
        "--key", default=None, help="only the enrollment with this key (e.g. a cart id)"
    )
    exit_.add_argument(
        "--reason",
        default="operator",
        help="recorded as what ended the enrollment (default 'operator')",
    )
    exit_.add_argument("--json", action="store_true", help="print the result as JSON")
    storage_options(exit_)
    temporal_options(exit_)


# ----- JSON -------------------------------------------------------------------------------


def to_json(value: object) -> str:
    """Dataclasses as objects, datetimes as ISO 8601 strings."""
    return json.dumps(value, default=_jsonable, indent=2)


def _jsonable(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ----- journeys ---------------------------------------------------------------------------


def run_journeys_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(journeys_command(args, settings))


async def journeys_command(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.catalog_info import catalog_overview
    from persistence import create_database

    database = create_database(settings.database_url_resolved)
    try:
        overview = await catalog_overview(database)
    finally:
        await database.dispose()
    if args.json:
        print(to_json({"journeys": overview}))
    else:
        _console().print(_journeys_table(overview))
    return EXIT_OK


def _journeys_table(overview: Sequence[JourneyVersionInfo]) -> Any:
    from rich.table import Table

    table = Table(title="Journeys")
    table.add_column("Journey")
    table.add_column("Version")
    table.add_column("Triggers")
    table.add_column("Active", justify="right")
    table.add_column("Description", overflow="fold")
    for info in overview:
        version = str(info.version)
        if info.newest:
            version += " [green](newest)[/green]"
        if not info.in_code:
            version += " [red](missing from the code)[/red]"
        table.add_row(
            info.name,
            version,
            ", ".join(info.triggers) or "-",
            str(info.active),
            info.description,
        )
    return table


# ----- contact ----------------------------------------------------------------------------


@dataclass
class Profile:
    contact_id: str
    email: str | None
    phone: str | None
    timezone: str | None
    locale: str | None
    lifecycle_stage: str | None
    # Marketing consent per channel (transactional messages do not need it).
    consent: dict[str, bool]
    # Why email is suppressed for good (hard_bounce, complaint), if it is.
    email_suppressed: str | None
    # No marketing email while dormant; the contact's next event clears it.
    dormant: bool
    dormant_at: datetime | None
    crm_id: str | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass
class ScoreNow:
    # Decay applied up to now; 0 for a contact no rule has scored.
    score: float
    qualified: bool
    qualify_at: float
    disqualify_below: float


@dataclass
class MessageLine:
    message_id: str
    created_at: datetime
    journey: str
    step: str
    channel: str
    category: str
    template: str
    subject: str | None
    # sending | sent | failed | suppressed, and why (e.g. quiet_hours, no_consent).
    status: str
    reason: str | None
    sent_at: datetime | None


@dataclass
class ContactRecord:
    """What the database alone says about a contact."""

    profile: Profile
    score: ScoreNow
    messages: list[MessageLine]


@dataclass
class ContactView:
    profile: Profile
    score: ScoreNow
    enrollments: list[ContactEnrollment]
    messages: list[MessageLine]


async def read_contact_record(
    database: Database, settings: Settings, contact_id: str, messages: int
) -> ContactRecord | None:
    """The profile, score now and newest `messages` messages; None for an unknown contact."""
    from datetime import timedelta

    from api.services.messages import contact_messages
    from journeyman.scoring.store import current_score
    from persistence import Contact, LeadScore
    from persistence.models import CONSENT_CHANNELS, as_utc, utcnow

    half_life = timedelta(days=settings.score_half_life_days)
    async with database.session() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            return None
        score = await current_score(session, contact_id, utcnow(), half_life)
        scored = await session.get(LeadScore, contact_id)
        rows = (
            (
                await contact_messages(
                    session=session, contact_id=contact_id, limit=messages, cursor=None
                )
            )[0]
            if messages
            else []
        )
    profile = Profile(
        contact_id=contact.contact_id,
        email=contact.email,
        phone=contact.phone,
        timezone=contact.timezone,
        locale=contact.locale,
        lifecycle_stage=contact.lifecycle_stage,
        consent={channel: contact.has_consent(channel) for channel in CONSENT_CHANNELS},
        email_suppressed=contact.email_suppressed,
        dormant=contact.dormant_at is not None,
        dormant_at=as_utc(contact.dormant_at) if contact.dormant_at else None,
        crm_id=contact.crm_id,
        attributes=dict(contact.attributes),
        created_at=as_utc(contact.created_at),
        updated_at=as_utc(contact.updated_at),
    )
    return ContactRecord(
        profile=profile,
        score=ScoreNow(
            score=score or 0.0,
            qualified=bool(scored and scored.qualified),
            qualify_at=settings.score_qualify_at,
            disqualify_below=settings.score_disqualify_below,
        ),
        messages=[
            MessageLine(
                message_id=row.message_id,
                created_at=as_utc(row.created_at),
                journey=row.journey,
                step=row.step,
                channel=row.channel,
                category=row.category,
                template=row.template,
                subject=row.subject,
                status=row.status,
                reason=row.reason,
                sent_at=as_utc(row.sent_at) if row.sent_at else None,
            )
            for row in rows
        ],
    )


def run_contact_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(contact_command(args, settings))


async def contact_command(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.enrollments import EnrollmentService
    from persistence import create_database

    if args.erase_id is not None:
        if args.contact_id != ERASE:
            _error(f"journeyman contact: one id at a time; to erase: contact {ERASE} <id>")
            return EXIT_USAGE
        return await erase_command(args.erase_id, args.json, settings)
    database = create_database(settings.database_url_resolved)
    try:
        record = await read_contact_record(database, settings, args.contact_id, args.messages)
        if record is None:
            _error(f"journeyman contact: no contact '{args.contact_id}'")
            return EXIT_NOT_FOUND
        client = await _connect(settings, "contact")
        if client is None:
            return EXIT_UNREACHABLE
        service = EnrollmentService(client=client, database=database, settings=settings)
        enrollments = await service.contact_enrollments(args.contact_id)
    finally:
        await database.dispose()
    view = ContactView(
        profile=record.profile,
        score=record.score,
        enrollments=enrollments,
        messages=record.messages,
    )
    if args.json:
        print(to_json(view))
    else:
        _print_contact(_console(), view)
    return EXIT_OK


def _print_contact(console: Console, view: ContactView) -> None:
    from rich.table import Table

    profile = view.profile
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column()
    consent = ", ".join(f"{ch} {'yes' if ok else 'no'}" for ch, ok in profile.consent.items())
    rows = [
        ("Email", profile.email or "-"),
        ("Phone", profile.phone or "-"),
        ("Timezone", profile.timezone or "-"),
        ("Lifecycle stage", profile.lifecycle_stage or "-"),
        ("Consent", consent),
        ("Email suppressed", profile.email_suppressed or "no"),
        ("Dormant", f"since {_when(profile.dormant_at)}" if profile.dormant else "no"),
        (
            "Lead score",
            f"{view.score.score:.1f} ("
            + ("qualified" if view.score.qualified else "not qualified")
            + f"; qualifies at {view.score.qualify_at:g})",
        ),
    ]
    for label, value in rows:
        about.add_row(label, value)
    console.print(f"[bold]Contact {profile.contact_id}[/bold]", highlight=False)
    console.print(about)

    enrollments = Table(title="Enrollments")
    for column in ("Journey", "Version", "Key", "Status", "Now", "Entered"):
        enrollments.add_column(column, overflow="fold")
    for enrollment in view.enrollments:
        enrollments.add_row(
            enrollment.journey,
            str(enrollment.version),
            enrollment.key or "-",
            enrollment.status,
            _now(enrollment),
            _when(enrollment.entered_at),
        )
    console.print(enrollments if view.enrollments else "No enrollments.")

    messages = Table(title="Last messages")
    for column in ("When", "Journey / step", "Channel", "Template"):
        messages.add_column(column, overflow="fold")
    messages.add_column("Status", no_wrap=True)  # "suppressed: quiet_hours" stays whole
    for message in view.messages:
        status = f"{message.status}: {message.reason}" if message.reason else message.status
        messages.add_row(
            _when(message.created_at),
            f"{message.journey} / {message.step}",
            message.channel,
            message.subject or message.template,
            status,
        )
    console.print(messages if view.messages else "No messages.")


def _now(enrollment: ContactEnrollment) -> str:
    """What a running enrollment is doing, in a phrase; what ended it otherwise."""
    live = enrollment.live
    if enrollment.status != "active":
        return f"ended by {enrollment.ended_by}" if enrollment.ended_by else "ended"
    if live is None:
        step = enrollment.current_step or "?"
        return f"{step} (live state unavailable: is a worker running?)"
    text = live.current_step or "starting"
    if live.waiting_for:
        text += f", waiting for {', '.join(live.waiting_for)}"
    elif live.wait_until is not None:
        text += ", waiting"
    if live.wait_until is not None:
        text += f" until {_when(live.wait_until)}"
    return text


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else "-"


# ----- exit -------------------------------------------------------------------------------


def run_exit_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(exit_command(args, settings))


async def exit_command(args: argparse.Namespace, settings: Settings) -> int:
    from journeyman.enrollments import EnrollmentService
    from persistence import create_database
    from workflows import catalog
    from workflows.catalog import UnknownJourneyError

    try:
        catalog.get(args.journey)
    except UnknownJourneyError:
        known = ", ".join(cls.name for cls in catalog.latest())
        _error(f"journeyman exit: unknown journey '{args.journey}' (known: {known})")
        return EXIT_UNKNOWN_JOURNEY
    client = await _connect(settings, "exit")
    if client is None:
        return EXIT_UNREACHABLE
    database = create_database(settings.database_url_resolved)
    try:
        service = EnrollmentService(client=client, database=database, settings=settings)
        result = await service.exit(args.journey, args.contact_id, args.key, args.reason)
    finally:
        await database.dispose()
    if args.json:
        print(to_json(result))
    elif result.exited:
        console = _console()
        console.print(f"Told {len(result.exited)} enrollment(s) to exit ({args.reason}):")
        for workflow_id in result.exited:
            console.print(workflow_id, markup=False, soft_wrap=True)
    if not result.exited:
        keyed = f" with key '{args.key}'" if args.key else ""
        _error(
            f"journeyman exit: no running enrollment of {result.journey}{keyed} "
            f"for contact '{args.contact_id}'"
        )
        return EXIT_NOT_FOUND
    return EXIT_OK


async def erase_command(contact_id: str, as_json: bool, settings: Settings) -> int:
    from journeyman.erasure import ErasureService, UnknownContactError
    from persistence import create_database

    client = await _connect(settings, "contact erase")
    if client is None:
        return EXIT_UNREACHABLE
    database = create_database(settings.database_url_resolved)
    try:
        service = ErasureService(client=client, database=database, settings=settings)
        record = await service.erase(contact_id)
    except UnknownContactError as err:
        _error(f"journeyman contact erase: {err}")
        return EXIT_NOT_FOUND
    finally:
        await database.dispose()
    erased = {
        "pseudonym": record.pseudonym,
        "requested_at": record.requested_at,
        "completed_at": record.completed_at,
        "counts": record.counts,
    }
    if as_json:
        print(to_json(erased))
        return EXIT_OK
    console = _console()
    console.print(f"Erased; the kept rows now say {record.pseudonym}.", markup=False)
    for table, count in record.counts.items():
        console.print(f"  {table}: {count}", markup=False)
    return EXIT_OK


# ----- shared -----------------------------------------------------------------------------


async def _connect(settings: Settings, command: str) -> Client | None:
    from journeyman.temporal import connect

    try:
        return await connect(settings)
    except RuntimeError as err:
        _error(f"journeyman {command}: Temporal at {settings.temporal_address}: {err}")
        return None


def _console() -> Console:
    from rich.console import Console

    # Looked up at each call: tests (and callers) may have replaced sys.stdout. Off a terminal
    # (a pipe, a log) rich would fold the tables at 80 columns: wider keeps a row on a line,
    # which grep likes better.
    wide = None if sys.stdout.isatty() else PLAIN_WIDTH
    return Console(file=sys.stdout, highlight=False, width=wide)


def _error(text: str) -> None:
    print(text, file=sys.stderr)
