"""A journey for the lifecycle tests, twice: as the runtime runs it now (records batched), and
forced onto the path runs recorded before the `batched-lifecycle` patch still take, so the two
can be compared on one server. Test-only: not in the catalog."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey

REPLY = "probe_reply"
# Short enough to pass in real time while a test drives the run (skipping it with
# `env.sleep` while the test also queries the run timed out on the test server).
PAUSE = timedelta(seconds=2)
REPLY_WINDOW = timedelta(days=1)


class _Probe(Journey):
    triggers = ("probe_started",)
    goals = ("probe_goal",)
    exits = ("probe_exit",)
    waits_for = (REPLY,)

    async def steps(self) -> None:
        await self.send("first", template="welcome_series/welcome")
        await self.split("pick", {"a": 1})  # one variant: the same in both probes
        await self.wait("pause", PAUSE)
        await self.wait_for("reply", REPLY, REPLY_WINDOW)
        await self.send("second", template="welcome_series/welcome")


@journey
class BatchedProbe(_Probe):
    name = "lifecycle_probe"


@journey
class UnbatchedProbe(_Probe):
    name = "lifecycle_probe_unbatched"

    async def _record(self, *args: Any, **kwargs: Any) -> None:
        # What a run whose history has no patch marker does: one local activity per record.
        self._batched = False
        await super()._record(*args, **kwargs)


# The local activities each run's history holds: entered, 5 steps, ended; or fewer batches.
UNBATCHED_WRITES = 7
# "entered"; "first" and "pick" before the pause; "pause" before the reply window; the rest
# with "ended".
BATCHED_WRITES = 4
