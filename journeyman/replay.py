"""Replay: would the code about to ship still run the enrollments that are running now?

A running enrollment is resumed from its history: every worker that picks it up replays the
events so far through the workflow code, and the code must make the same decisions in the
same order (a timer where a timer was, the same activity where an activity was). A journey
edited without `workflow.patched()` (steps reordered, a wait added) breaks that, and breaks
only when the enrollment next wakes up, maybe weeks after the deploy. Replaying first shows
it before: `replay_running` fetches the histories of running workflows from a server and
replays them against the given workflow classes (default: the current code);
`replay_recorded` does the same for the histories kept under `tests/histories`.

Nothing is executed for real: the replayer never calls activities, it checks decisions.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from temporalio import workflow
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer

import workflows as workflows_package
from workflows import catalog
from workflows.contracts import CONTACT_ID, JOURNEY_NAME, JOURNEY_VERSION
from workflows.runtime import Journey

# Histories are fetched this many at a time; replaying itself runs one at a time in the
# replayer's own worker, so more parallel fetches than this only add load on the server.
DEFAULT_CONCURRENCY = 8

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class ReplayOutcome:
    """One workflow execution replayed (or not) against the code."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: Status
    journey: str | None = None
    version: int | None = None
    # Why it failed (the replayer's nondeterminism error) or was skipped.
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "workflow_type": self.workflow_type,
            "journey": self.journey,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class TypeSummary:
    workflow_type: str
    journey: str | None
    version: int | None
    checked: int
    failed: int


@dataclass
class ReplayReport:
    outcomes: list[ReplayOutcome] = field(default_factory=list)
    # How many executions the query matched; more than were checked when `limit` cut it.
    matched: int = 0
    query: str | None = None

    @property
    def checked(self) -> int:
        """Executions replayed (ok or failed); skipped ones are not Journeyman's."""
        return sum(1 for outcome in self.outcomes if outcome.status != "skipped")

    @property
    def failures(self) -> list[ReplayOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def skipped(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == "skipped")

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def limited(self) -> bool:
        return self.matched > len(self.outcomes)

    def by_type(self) -> list[TypeSummary]:
        """Checked and failed per workflow type (`<journey>.v<version>` for journeys)."""
        checked: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        labels: dict[str, tuple[str | None, int | None]] = {}
        for outcome in self.outcomes:
            if outcome.status == "skipped":
                continue
            checked[outcome.workflow_type] += 1
            failed[outcome.workflow_type] += outcome.status == "failed"
            labels[outcome.workflow_type] = (outcome.journey, outcome.version)
        return [
            TypeSummary(name, *labels[name], checked=checked[name], failed=failed[name])
            for name in sorted(checked)
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "query": self.query,
            "matched": self.matched,
            "checked": self.checked,
            "failed": self.failed,
            "skipped": self.skipped,
            "limited": self.limited,
            "failed_workflow_ids": [outcome.workflow_id for outcome in self.failures],
            "by_type": [
                {
                    "workflow_type": summary.workflow_type,
                    "journey": summary.journey,
                    "version": summary.version,
                    "checked": summary.checked,
                    "failed": summary.failed,
                }
                for summary in self.by_type()
            ],
            "outcomes": [outcome.as_json() for outcome in self.outcomes],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2)


# Called after each execution with its outcome, how many are done and how many there are.
ProgressCallback = Callable[[ReplayOutcome, int, int], None]


# ----- the workflow classes of the current code ---------------------------------------------


def current_workflows() -> list[type]:
    """Every workflow class the worker may run: each journey version, and every other
    `@workflow.defn` class in `workflows/` (the lead scorer, the CRM sync...), found by looking
    rather than listed, so a new one is replayed without anyone remembering to add it here."""
    journeys: list[type] = list(catalog.all_versions())
    others: list[type] = []
    for module_info in pkgutil.iter_modules(workflows_package.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"workflows.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and value not in journeys
                and workflow_type_of(value) is not None
            ):
                others.append(value)
    return [*journeys, *sorted(others, key=lambda cls: workflow_type_of(cls) or "")]


def workflow_type_of(cls: type) -> str | None:
    """The workflow type name a `@workflow.defn` class registers; None for other classes."""
    definition = workflow._Definition.from_class(cls)
    return definition.name if definition is not None else None


def _by_type(classes: Sequence[type]) -> dict[str, type]:
    found: dict[str, type] = {}
    for cls in classes:
        name = workflow_type_of(cls)
        if name is None:
            raise TypeError(f"{cls.__name__} is not a @workflow.defn class")
        found[name] = cls
    return found


def _journey_label(cls: type | None) -> tuple[str | None, int | None]:
    if isinstance(cls, type) and issubclass(cls, Journey):
        return cls.name, cls.version
    return None, None


# ----- replaying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """What the report says about a history, known before it is replayed."""

    workflow_id: str
    run_id: str
    workflow_type: str
    journey: str | None
    version: int | None

    def outcome(self, status: Status, error: str | None = None) -> ReplayOutcome:
        return ReplayOutcome(
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            workflow_type=self.workflow_type,
            status=status,
            journey=self.journey,
            version=self.version,
            error=error,
        )


class _Tally:
    """Collects outcomes in order and reports progress."""

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total = total
        self.progress = progress
        self.outcomes: list[ReplayOutcome] = []

    def add(self, outcome: ReplayOutcome) -> None:
        self.outcomes.append(outcome)
        if self.progress is not None:
            self.progress(outcome, len(self.outcomes), self.total)


async def _replay_histories(
    histories: AsyncIterator[WorkflowHistory],
    subjects: dict[str, _Subject],
    classes: Sequence[type],
    tally: _Tally,
) -> None:
    """Replay each history as it arrives; `subjects` describes each by workflow id."""
    replayer = Replayer(workflows=classes, runtime=_quiet_runtime())
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            subject = subjects[result.history.workflow_id]
            failure = result.replay_failure
            if failure is None:
                tally.add(subject.outcome("ok"))
            else:
                tally.add(subject.outcome("failed", _explained(failure)))


@lru_cache(maxsize=1)
def _quiet_runtime() -> Runtime:
    """A Temporal runtime for replaying whose core logs errors only: by default it warns
    "Failing workflow task" for every history that does not replay, and here that is the
    result, reported once, not noise to print before it."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


# The core wraps the reason in the failure it would have sent the server:
# `... Failure { failure: Some(Failure { message: "[TMPRL1100] Nondeterminism error: ...", ...`
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _explained(failure: Exception) -> str:
    """`<error type>: <the core's own message>`, without the failure's Rust debug dump."""
    text = str(failure)
    found = _CORE_MESSAGE.search(text)
    return f"{type(failure).__name__}: {found.group(1) if found else text}"


# ----- running enrollments on a server --------------------------------------------------------


def running_query(
    journey: str | None = None, version: int | None = None, contact_id: str | None = None
) -> str:
    """The visibility query for running executions, narrowed to a journey, a version and/or
    one contact's enrollments."""
    terms = ['ExecutionStatus = "Running"']
    if journey is not None:
        terms.append(f'{JOURNEY_NAME.name} = "{_quoted(journey)}"')
    if version is not None:
        terms.append(f"{JOURNEY_VERSION.name} = {int(version)}")
    if contact_id is not None:
        terms.append(f'{CONTACT_ID.name} = "{_quoted(contact_id)}"')
    return " AND ".join(terms)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def replay_running(
    client: Client,
    *,
    journey: str | None = None,
    version: int | None = None,
    contact_id: str | None = None,
    limit: int | None = None,
    workflows: Sequence[type] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    """Replay the running executions on `client`'s namespace against `workflows` (default:
    the current code), at most `limit` of them.

    Without a journey or version every running execution is listed: journeys, the lead
    scorers, the CRM sync. One whose type the code does not have fails when it is a journey
    enrollment (its version was removed while it still runs) and is skipped otherwise (a
    workflow of another application sharing the namespace).
    Raises `RPCError` when the server cannot be asked (down, unknown namespace, search
    attributes not registered).
    """
    classes = list(workflows) if workflows is not None else current_workflows()
    known = _by_type(classes)
    query = running_query(journey, version, contact_id)
    matched = (await client.count_workflows(query)).count
    executions = [execution async for execution in client.list_workflows(query, limit=limit)]
    tally = _Tally(len(executions), progress)
    subjects: dict[str, _Subject] = {}
    replayable: list[WorkflowExecution] = []
    for execution in executions:
        subject = _running_subject(execution)
        if execution.workflow_type in known:
            subjects[execution.id] = subject
            replayable.append(execution)
        elif subject.journey is not None:
            tally.add(
                subject.outcome(
                    "failed",
                    f"the code has no workflow {execution.workflow_type!r}: a journey version "
                    "was removed while enrollments still run on it",
                )
            )
        else:
            tally.add(subject.outcome("skipped", "not a Journeyman workflow type"))
    histories = _fetched(client, replayable, subjects, concurrency, tally)
    await _replay_histories(histories, subjects, classes, tally)
    return ReplayReport(outcomes=tally.outcomes, matched=max(matched, len(executions)), query=query)


def _running_subject(execution: WorkflowExecution) -> _Subject:
    attributes = execution.typed_search_attributes
    journey = attributes.get(JOURNEY_NAME)
    version = attributes.get(JOURNEY_VERSION)
    return _Subject(
        workflow_id=execution.id,
        run_id=execution.run_id,
        workflow_type=execution.workflow_type,
        journey=journey,
        version=version,
    )


async def _fetched(
    client: Client,
    executions: list[WorkflowExecution],
    subjects: dict[str, _Subject],
    concurrency: int,
    tally: _Tally,
) -> AsyncIterator[WorkflowHistory]:
    """The histories of `executions`, fetched `concurrency` at a time, as they arrive.

    The queue is as small as the fetchers are many: fetching never runs far ahead of
    replaying, so memory holds a handful of histories however many enrollments run. An
    execution whose history cannot be fetched is a failure (it was not checked).
    """
    queue: asyncio.Queue[WorkflowHistory | None] = asyncio.Queue(maxsize=max(1, concurrency))
    pending: Iterator[WorkflowExecution] = iter(executions)

    async def fetcher() -> None:
        for execution in pending:  # shared: each execution goes to exactly one fetcher
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                await queue.put(await handle.fetch_history())
            except RPCError as err:
                tally.add(subjects[execution.id].outcome("failed", f"history not fetched: {err}"))
                await queue.put(None)

    fetchers = [asyncio.create_task(fetcher()) for _ in range(max(1, concurrency))]
    try:
        for _ in executions:
            history = await queue.get()
            if history is not None:
                yield history
    finally:
        for task in fetchers:
            task.cancel()
        await asyncio.gather(*fetchers, return_exceptions=True)


# ----- recorded histories ---------------------------------------------------------------------


def recorded_histories(folder: Path) -> list[WorkflowHistory]:
    """The histories recorded under `folder` (`*.json`, as `fetch_history().to_json()` or the
    Temporal UI/CLI export them), each named `<folder name>/<file stem>`."""
    return [
        WorkflowHistory.from_json(f"{folder.name}/{path.stem}", path.read_text())
        for path in sorted(folder.glob("*.json"))
    ]


def recorded_type(history: WorkflowHistory) -> str:
    """The workflow type a history was recorded from (its first event names it)."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


async def replay_recorded(
    histories: Iterable[WorkflowHistory],
    *,
    workflows: Sequence[type] | None = None,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    """Replay recorded histories against `workflows` (default: the current code); a history
    whose workflow type the code no longer has fails."""
    classes = list(workflows) if workflows is not None else current_workflows()
    known = _by_type(classes)
    recorded = list(histories)
    tally = _Tally(len(recorded), progress)
    subjects: dict[str, _Subject] = {}
    replayable: list[WorkflowHistory] = []
    for history in recorded:
        workflow_type = recorded_type(history)
        subject = _Subject(
            history.workflow_id,
            history.run_id,
            workflow_type,
            *_journey_label(known.get(workflow_type)),
        )
        if workflow_type in known:
            subjects[history.workflow_id] = subject
            replayable.append(history)
        else:
            tally.add(subject.outcome("failed", f"the code has no workflow {workflow_type!r}"))

    async def in_order() -> AsyncIterator[WorkflowHistory]:
        for history in replayable:
            yield history

    await _replay_histories(in_order(), subjects, classes, tally)
    return ReplayReport(outcomes=tally.outcomes, matched=len(recorded))
