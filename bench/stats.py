"""Time the journey stats over 100,000 enrollments in a fresh PostgreSQL database.

Loads `abandoned_cart` enrollments with their steps, messages and split assignments by COPY,
then times `journeyman.stats.journey_stats` and `GET /v1/journeys/{name}/stats` (through the
app in-process over ASGI), and prints p50 and max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from api import create_app
from journeyman.settings import Settings
from journeyman.stats import StatsFilter, journey_stats
from persistence import create_database, migrate
from workflows.splits import assign_variant

JOURNEY = "abandoned_cart"
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 90
API_KEY = "bench-key"
ENROLLMENT_COLUMNS = "run_id, workflow_id, journey, version, contact_id, key, status, entered_at"
STEP_COLUMNS = "run_id, journey, step, kind, outcome, at"
MESSAGE_COLUMNS = (
    "message_id, workflow_id, run_id, journey, step, contact_id, channel, category, template, "
    "status, reason, attempts, links, created_at, sent_at, delivered_at, opened_at, "
    "first_clicked_at, clicks"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per case")
    parser.add_argument(
        "--admin-dsn",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to connect to while creating (and dropping) the bench one",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")


def run(args: argparse.Namespace) -> None:
    name = f"journeyman_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = args.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        migrate(url)
        began = time.perf_counter()
        counts = load(args.admin_dsn.rsplit("/", 1)[0] + f"/{name}", args.enrollments)
        print(
            f"loaded {counts['enrollments']:,} enrollments, {counts['steps']:,} steps, "
            f"{counts['messages']:,} messages in {time.perf_counter() - began:.1f} s ({name})"
        )
        asyncio.run(measure(url, args.runs))
    finally:
        if not args.keep:
            with psycopg.connect(args.admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load(dsn: str, total: int) -> dict[str, int]:
    rng = random.Random(4)
    counts = {"enrollments": 0, "steps": 0, "messages": 0}
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        enrollments, steps, messages = [], [], []
        for index in range(total):
            enrollment, its_steps, its_messages = _journey(rng, index)
            enrollments.append(enrollment)
            steps.extend(its_steps)
            messages.extend(its_messages)
        for table, columns, rows in (
            ("enrollments", ENROLLMENT_COLUMNS, enrollments),
            ("enrollment_steps", STEP_COLUMNS, steps),
            ("messages", MESSAGE_COLUMNS, messages),
        ):
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        counts.update(enrollments=len(enrollments), steps=len(steps), messages=len(messages))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return counts


def _journey(rng: random.Random, index: int) -> tuple[tuple[Any, ...], list[Any], list[Any]]:
    """One enrollment as abandoned_cart v2 would leave it (v1 for one in ten)."""
    run_id = uuid.UUID(int=rng.getrandbits(128)).hex
    contact = f"bench-{index}"
    workflow_id = f"journey:{JOURNEY}:{contact}:cart-{index}"
    version = 1 if index % 10 == 0 else 2
    entered = START + timedelta(seconds=rng.randrange(DAYS * 86_400))
    steps: list[Any] = []
    messages: list[Any] = []
    at = entered + timedelta(hours=1)
    steps.append((run_id, JOURNEY, "grace_period", "wait", "waited", at))
    sends = [("first_reminder", at)]
    if rng.random() < 0.7:
        at += timedelta(hours=24)
        steps.append((run_id, JOURNEY, "order_window", "wait", "waited", at))
        if version == 2:
            variant = assign_variant(
                contact, JOURNEY, "second_reminder_test", {"A": 50, "B": 50}, 10
            )
            steps.append(
                (run_id, JOURNEY, "second_reminder_test", "split", f"variant {variant}", at)
            )
            if variant != "holdout":
                sends.append(("second_reminder", at))
        else:
            sends.append(("second_reminder", at))
    for step, sent_at in sends:
        outcome = _message(rng, messages, run_id, workflow_id, contact, step, sent_at)
        steps.append((run_id, JOURNEY, step, "send", outcome, sent_at))
    roll = rng.random()
    status = "converted" if roll < 0.12 else "exited" if roll < 0.15 else "completed"
    if rng.random() < 0.05:
        status = "active"
    return (
        (run_id, workflow_id, JOURNEY, version, contact, f"cart-{index}", status, entered),
        steps,
        messages,
    )


def _message(
    rng: random.Random,
    messages: list[Any],
    run_id: str,
    workflow_id: str,
    contact: str,
    step: str,
    at: datetime,
) -> str:
    roll = rng.random()
    status, reason = ("sent", None)
    if roll < 0.08:
        status, reason = "suppressed", "frequency_cap"
    elif roll < 0.10:
        status, reason = "suppressed", "unsubscribed"
    elif roll < 0.12:
        status, reason = "failed", "invalid_address"
    sent = status == "sent"
    delivered = sent and rng.random() < 0.95
    opened = delivered and rng.random() < 0.4
    clicked = opened and rng.random() < 0.3
    messages.append(
        (
            f"{workflow_id}:{run_id}:{step}",
            workflow_id,
            run_id,
            JOURNEY,
            step,
            contact,
            "email",
            "marketing",
            f"abandoned_cart/{step}",
            status,
            reason,
            1,
            "[]",
            at,
            at if sent else None,
            at if delivered else None,
            at if opened else None,
            at if clicked else None,
            1 if clicked else 0,
        )
    )
    return status if reason is None else f"{status}: {reason}"


async def measure(url: str, runs: int) -> None:
    month = {"since": "2026-02-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}
    cases = {
        "all time": ({}, StatsFilter(journey=JOURNEY)),
        "v2 only": ({"version": "2"}, StatsFilter(journey=JOURNEY, version=2)),
        "one month": (
            month,
            StatsFilter(
                journey=JOURNEY,
                since=datetime(2026, 2, 1, tzinfo=UTC),
                until=datetime(2026, 3, 1, tzinfo=UTC),
            ),
        ),
    }
    database = create_database(url)
    app = create_app(Settings(database_url=url, api_keys=[API_KEY]), database=database)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://bench",
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as client,
        ):
            for label, (params, where) in cases.items():

                async def service(where: StatsFilter = where) -> None:
                    async with database.session() as session:
                        await journey_stats(session, where)

                async def endpoint(params: dict[str, str] = params) -> None:
                    response = await client.get(f"/v1/journeys/{JOURNEY}/stats", params=params)
                    response.raise_for_status()

                entered = (await client.get(f"/v1/journeys/{JOURNEY}/stats", params=params)).json()[
                    "enrollments"
                ]["entered"]
                for kind, call in (("service", service), ("HTTP", endpoint)):
                    print(_line(f"{label} ({entered:,} entered), {kind}", await _time(call, runs)))
    finally:
        await database.dispose()


async def _time(call: Callable[[], Awaitable[None]], runs: int) -> list[float]:
    await call()  # warm-up: connection pool, plan cache
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def _line(label: str, timings: list[float]) -> str:
    return (
        f"{label:<42} p50 {statistics.median(timings):7.1f} ms   max {max(timings):7.1f} ms"
        f"   ({len(timings)} runs)"
    )
