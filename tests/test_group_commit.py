"""GroupCommit: jobs submitted while a group is being written go together into the next one;
a failing group is retried job by job so only the bad job's caller fails."""

from __future__ import annotations

import asyncio

import pytest

from persistence.group_commit import GroupCommit


class Writes:
    """A write function that records its groups and waits for the test to let it finish."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, jobs: list[int]) -> list[int]:
        self.groups.append(list(jobs))
        await self.release.wait()
        if any(job < 0 for job in jobs):
            raise ValueError(f"bad job in {jobs}")
        return [job * 10 for job in jobs]


async def test_jobs_arriving_during_a_write_go_together_into_the_next() -> None:
    writes = Writes()
    group: GroupCommit[int, int] = GroupCommit(writes)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)  # the first write starts, with the first job alone
    rest = [asyncio.create_task(group.submit(n)) for n in range(2, 12)]
    await asyncio.sleep(0)
    writes.release.set()

    assert await first == 10
    assert await asyncio.gather(*rest) == [n * 10 for n in range(2, 12)]
    assert writes.groups == [[1], list(range(2, 12))]


async def test_a_lone_job_is_written_at_once() -> None:
    writes = Writes()
    writes.release.set()
    group: GroupCommit[int, int] = GroupCommit(writes)

    assert await asyncio.wait_for(group.submit(7), timeout=5) == 70
    assert await asyncio.wait_for(group.submit(8), timeout=5) == 80
    assert writes.groups == [[7], [8]]


async def test_a_failing_job_fails_only_its_caller() -> None:
    writes = Writes()
    group: GroupCommit[int, int] = GroupCommit(writes)
    blocker = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    jobs = [asyncio.create_task(group.submit(n)) for n in (1, -1, 2)]
    await asyncio.sleep(0)
    writes.release.set()

    assert await blocker == 0
    assert await jobs[0] == 10
    with pytest.raises(ValueError, match="bad job"):
        await jobs[1]
    assert await jobs[2] == 20
    # The group of three failed as a whole, then each job was written alone.
    assert writes.groups == [[0], [1, -1, 2], [1], [-1], [2]]
