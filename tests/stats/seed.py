"""A known dataset, inserted as rows (no journeys run): every count in the tests is read here.

Everything enters in 2001 or 2002, so the tests' `since`/`until` windows see only these rows
while other tests share the database with enrollments of today.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import SQLModel

from persistence import Database, Enrollment, EnrollmentStep, Message

JOURNEY = "abandoned_cart"
FUNNEL_START = datetime(2001, 3, 1, tzinfo=UTC)
FUNNEL_WINDOW = {"since": "2001-03-01T00:00:00Z", "until": "2001-04-01T00:00:00Z"}
SPLIT_START = datetime(2002, 6, 1, tzinfo=UTC)
SPLIT_WINDOW = {"since": "2002-01-01T00:00:00Z", "until": "2003-01-01T00:00:00Z"}
# The split step of abandoned_cart v2: (enrollments, conversions) per group.
SPLIT = {"A": (200, 50), "B": (200, 24), "holdout": (200, 20)}

# Version 2 funnel, one line per enrollment: status, then the first reminder's message as
# (status, reason, delivered, opened, clicked), or None when it never got that far.
FUNNEL_V2: list[tuple[str, tuple[str, str | None, bool, bool, bool] | None]] = [
    ("converted", ("sent", None, True, True, True)),
    ("converted", ("sent", None, True, True, False)),
    ("converted", ("sent", None, True, True, False)),
    ("converted", ("sent", None, True, False, False)),
    ("exited", ("sent", None, True, False, False)),
    ("exited", ("sent", None, False, False, False)),
    ("completed", ("suppressed", "frequency_cap", False, False, False)),
    ("completed", ("suppressed", "unsubscribed", False, False, False)),
    ("active", ("failed", "invalid_address", False, False, False)),
    ("failed", None),
]


class Seeder:
    def __init__(self) -> None:
        self.enrollments: list[Enrollment] = []
        self.steps: list[EnrollmentStep] = []
        self.messages: list[Message] = []

    def enroll(self, version: int, status: str, entered_at: datetime) -> str:
        run_id = uuid.uuid4().hex
        self.enrollments.append(
            Enrollment(
                run_id=run_id,
                workflow_id=f"journey:{JOURNEY}:seed-{run_id}",
                journey=JOURNEY,
                version=version,
                contact_id=f"seed-{run_id[:12]}",
                status=status,
                entered_at=entered_at,
                ended_at=None if status == "active" else entered_at + timedelta(days=2),
            )
        )
        return run_id

    def step(self, run_id: str, step: str, kind: str, outcome: str, at: datetime) -> None:
        self.steps.append(
            EnrollmentStep(
                run_id=run_id, journey=JOURNEY, step=step, kind=kind, outcome=outcome, at=at
            )
        )

    def message(
        self, run_id: str, step: str, at: datetime, shape: tuple[str, str | None, bool, bool, bool]
    ) -> None:
        status, reason, delivered, opened, clicked = shape
        self.messages.append(
            Message(
                message_id=f"{run_id}:{step}",
                workflow_id=f"journey:{JOURNEY}:seed-{run_id}",
                run_id=run_id,
                journey=JOURNEY,
                step=step,
                contact_id=f"seed-{run_id[:12]}",
                channel="email",
                template="abandoned_cart/reminder",
                status=status,
                reason=reason,
                created_at=at,
                sent_at=at if status == "sent" else None,
                delivered_at=at if delivered else None,
                opened_at=at if opened else None,
                first_clicked_at=at if clicked else None,
                clicks=2 if clicked else 0,
            )
        )

    async def save(self, database: Database) -> None:
        # Executemany of plain rows: the ORM's unit of work is slow for thousands of them.
        async with database.engine.begin() as connection:
            batches: list[tuple[type[SQLModel], list[Any]]] = [
                (Enrollment, self.enrollments),
                (EnrollmentStep, self.steps),
                (Message, self.messages),
            ]
            for model, rows in batches:
                await connection.execute(
                    insert(model), [row.model_dump(exclude={"id"}) for row in rows]
                )


def funnel(seeder: Seeder) -> None:
    """abandoned_cart in March 2001: 10 enrollments on v2, 2 on v1, one after the window."""
    for index, (status, message) in enumerate(FUNNEL_V2):
        entered = FUNNEL_START + timedelta(hours=index)
        run_id = seeder.enroll(2, status, entered)
        seeder.step(run_id, "grace_period", "wait", "waited", entered + timedelta(hours=1))
        if message is None:
            continue
        at = entered + timedelta(hours=1, minutes=1)
        seeder.message(run_id, "first_reminder", at, message)
        # The failed send's step has not been recorded yet: reached through its message only.
        if message[0] != "failed":
            outcome = message[0] if message[1] is None else f"{message[0]}: {message[1]}"
            seeder.step(run_id, "first_reminder", "send", outcome, at)
    for status in ("converted", "active"):
        run_id = seeder.enroll(1, status, FUNNEL_START + timedelta(days=4))
        seeder.step(run_id, "grace_period", "wait", "waited", FUNNEL_START + timedelta(days=4))
    late = seeder.enroll(2, "converted", datetime(2001, 4, 1, tzinfo=UTC))
    seeder.step(late, "grace_period", "wait", "waited", datetime(2001, 4, 1, 1, tzinfo=UTC))


def split(seeder: Seeder) -> None:
    """abandoned_cart v2 in June 2002, the whole journey, with the SPLIT numbers at its test.

    Each group's enrollment `index` decides its engagement: the first reminder is delivered
    unless index % 10 == 9, opened when index % 5 < 2, clicked when index % 5 == 0; variants'
    second reminder is opened when index % 3 == 0, clicked when index % 6 == 0.
    """
    start = SPLIT_START
    for variant, (count, conversions) in SPLIT.items():
        for index in range(count):
            status = "converted" if index < conversions else "completed"
            entered = start + timedelta(minutes=index)
            run_id = seeder.enroll(2, status, entered)
            seeder.step(run_id, "grace_period", "wait", "waited", entered + timedelta(hours=1))
            first = entered + timedelta(hours=1, minutes=1)
            engaged = (index % 10 != 9, index % 5 < 2, index % 5 == 0)
            seeder.message(run_id, "first_reminder", first, ("sent", None, *engaged))
            seeder.step(run_id, "first_reminder", "send", "sent", first)
            test = entered + timedelta(hours=25)
            seeder.step(run_id, "second_reminder_test", "split", f"variant {variant}", test)
            if variant == "holdout":
                continue
            second = test + timedelta(minutes=1)
            engaged = (True, index % 3 == 0, index % 6 == 0)
            seeder.message(run_id, "second_reminder", second, ("sent", None, *engaged))
            seeder.step(run_id, "second_reminder", "send", "sent", second)
