"""Test-only journeys for the replay check: two versions of `replay_probe`, and a broken edit
of v1 registered under v1's workflow type.

Each reads the contact, then waits long enough that its enrollments are still running when
the test replays them.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.runtime import Journey, journey

PROBE = "replay_probe"


@journey
class ReplayProbeV1(Journey):
    name = PROBE
    version = 1
    triggers = ("probe_started",)

    async def steps(self) -> None:
        await self.read_contact("look_up")
        await self.wait("long_pause", timedelta(days=30))


@journey
class ReplayProbeV2(Journey):
    name = PROBE
    version = 2
    triggers = ("probe_started",)

    async def steps(self) -> None:
        await self.wait("short_pause", timedelta(hours=1))
        await self.read_contact("look_up")
        await self.wait("long_pause", timedelta(days=30))


@journey
class ReorderedReplayProbeV1(Journey):
    """v1 edited without a patch: the wait moved before the contact lookup."""

    name = PROBE
    version = 1
    triggers = ("probe_started",)

    async def steps(self) -> None:
        await self.wait("long_pause", timedelta(days=30))
        await self.read_contact("look_up")


PROBE_CODE = [ReplayProbeV1, ReplayProbeV2]
BROKEN_CODE = [ReorderedReplayProbeV1, ReplayProbeV2]
