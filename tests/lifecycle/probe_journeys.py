"""A journey for the lifecycle tests, three times: as the runtime runs it now (lean
bookkeeping), and forced onto the paths runs recorded before the `lean-bookkeeping` and
`batched-lifecycle` patches still take, so they can be compared on one server. Test-only: not
in the catalog."""

from __future__ import annotations

from datetime import timedelta

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
class LeanProbe(_Probe):
    """As a new run goes: records ride on the sends, `JourneyStep` set where it waits."""

    name = "lifecycle_probe"


@journey
class BatchedProbe(_Probe):
    name = "lifecycle_probe_batched"

    def _bookkeeping(self) -> tuple[bool, bool]:
        # What a run whose history has the batched-lifecycle marker but not the lean one does.
        return False, True


@journey
class UnbatchedProbe(_Probe):
    name = "lifecycle_probe_unbatched"

    def _bookkeeping(self) -> tuple[bool, bool]:
        # What a run whose history has no patch marker does: one local activity per record.
        return False, False


# The local activities each run's history holds: entered, 5 steps, ended; or fewer batches.
UNBATCHED_WRITES = 7
# "entered"; "first" and "pick" before the pause; "pause" before the reply window; the rest
# with "ended".
BATCHED_WRITES = 4
# "entered" and "first" ride on the first send; "pick" before the pause; "pause" before the
# reply window; "reply" and "second" on the second send; "ended" alone.
LEAN_WRITES = 3
# Search-attribute upserts: `JourneyStep` at every step and at the ending; or at the two
# waits and the ending, plus the `TemporalChangeVersion` the lean patch marker upserts (the
# forced probes call no patch, so a real batched run has one more than here).
BATCHED_UPSERTS = 6
LEAN_UPSERTS = 4
