"""The API process's Prometheus metrics: event counters, and totals read from the database.

Two kinds of numbers, two sources, on purpose:

- Events are counted where they happen, in this process (`count_ingested`, `count_routed`):
  ordinary prometheus-client counters, reset by a restart as Prometheus expects.
- Enrollments and messages are written by the workers, which are other processes (and may be
  many). Counting them there would give per-worker numbers that never match the stats API, so
  `/metrics` reads them from the database at scrape time instead, with two GROUP BY queries
  (`read_totals`), and hands them to prometheus-client through a custom collector. They are
  then the same numbers the stats API and the database show, whatever the workers did.

The send latency histogram is the exception: it is a timing, observed only in a worker, so it
is exported with the Temporal SDK's own metrics on the worker (`activities.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from persistence import Database, Enrollment, Message
from workflows import catalog
from workflows.contracts import StartJourneyResult

# Event names are the caller's free text; a label per name would let one backend that sends
# `viewed:/product/123` grow the series without bound. Names some journey declares keep their
# own label; the rest share this one (parentheses cannot occur in an event name).
OTHER_EVENT = "(other)"

# Not on prometheus-client's global registry: each scrape builds its own registry (below), so
# importing this module twice, or building several apps in one process, never collides.
EVENTS_INGESTED = Counter(
    "journeyman_events_ingested",
    "Events stored by the API (a retry of a stored event id is not counted again).",
    ["event"],
    registry=None,
)
EVENTS_ROUTED = Counter(
    "journeyman_events_routed",
    "Routing results of events: one per journey an event started, signalled or skipped.",
    ["event", "journey", "action"],
    registry=None,
)


def event_label(name: str) -> str:
    if catalog.triggered_by(name) or catalog.listening_to(name):
        return name
    return OTHER_EVENT


def count_ingested(name: str) -> None:
    EVENTS_INGESTED.labels(event=event_label(name)).inc()


def count_routed(name: str, results: Sequence[StartJourneyResult]) -> None:
    event = event_label(name)
    for result in results:
        EVENTS_ROUTED.labels(event=event, journey=result.journey, action=result.action).inc()


@dataclass
class Totals:
    """Row counts at one moment: (journey, status) -> n and (channel, status) -> n."""

    enrollments: dict[tuple[str, str], int] = field(default_factory=dict)
    messages: dict[tuple[str, str], int] = field(default_factory=dict)


async def read_totals(database: Database) -> Totals:
    """Two grouped counts; `ix_enrollments_journey` (journey, version, status) covers the first."""
    enrollments = select(Enrollment.journey, Enrollment.status, func.count()).group_by(
        col(Enrollment.journey), col(Enrollment.status)
    )
    messages = select(Message.channel, Message.status, func.count()).group_by(
        col(Message.channel), col(Message.status)
    )
    async with database.session() as session:
        by_journey = (await session.exec(enrollments)).all()
        by_channel = (await session.exec(messages)).all()
    return Totals(
        enrollments={(journey, status): n for journey, status, n in by_journey},
        messages={(channel, status): n for channel, status, n in by_channel},
    )


class TotalsCollector(Collector):
    """Exposes one `Totals` snapshot.

    Enrollments only ever gain rows and leave `active` once, so "started" and "ended" are
    true counters (`rate()` works). A message's status moves on (sending -> sent ->
    delivered...), so messages are a gauge of how many are in each status now.
    """

    def __init__(self, totals: Totals) -> None:
        self.totals = totals

    def collect(self) -> Iterable[Metric]:
        started = CounterMetricFamily(
            "journeyman_enrollments_started",
            "Enrollments entered, by journey (from the database).",
            labels=["journey"],
        )
        ended = CounterMetricFamily(
            "journeyman_enrollments_ended",
            "Enrollments ended, by journey and outcome (from the database).",
            labels=["journey", "outcome"],
        )
        active = GaugeMetricFamily(
            "journeyman_enrollments_active",
            "Enrollments running now, by journey (from the database).",
            labels=["journey"],
        )
        entered: dict[str, int] = {}
        running: dict[str, int] = {}
        for (journey, status), n in sorted(self.totals.enrollments.items()):
            entered[journey] = entered.get(journey, 0) + n
            running.setdefault(journey, 0)
            if status == "active":
                running[journey] += n
            else:
                ended.add_metric([journey, status], n)
        for journey, n in entered.items():
            started.add_metric([journey], n)
            active.add_metric([journey], running[journey])
        messages = GaugeMetricFamily(
            "journeyman_messages",
            "Messages by channel and current status (from the database).",
            labels=["channel", "status"],
        )
        for (channel, status), n in sorted(self.totals.messages.items()):
            messages.add_metric([channel, status], n)
        return [started, ended, active, messages]


def scrape_registry(totals: Totals) -> CollectorRegistry:
    """What one scrape of the API's `/metrics` shows."""
    # No auto-describe: it would run every collector twice per scrape just to check names.
    registry = CollectorRegistry(auto_describe=False)
    for collector in (
        EVENTS_INGESTED,
        EVENTS_ROUTED,
        TotalsCollector(totals),
        PROCESS_COLLECTOR,
        PLATFORM_COLLECTOR,
        GC_COLLECTOR,
    ):
        registry.register(collector)
    return registry
