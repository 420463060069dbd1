"""Group commit: jobs that concurrent requests submit are written together.

While one group is being written, the jobs that arrive meanwhile wait and then go, all of
them, into the next group: one transaction and a handful of statements for however many
requests are in flight, instead of a transaction each. An idle writer writes a lone job at
once (no timer, no added latency). On one SQLite file it also keeps this process's writers
from queueing on the database's write lock.

A failing group is written again job by job, so one bad job fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


class GroupCommit(Generic[J, R]):
    """`write` gets a list of jobs and answers one result per job, in order, or raises."""

    def __init__(self, write: Callable[[list[J]], Awaitable[list[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[J, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, job: J) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((job, future))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            # (A task of another, closed event loop - tests run several - never finishes;
            # its waiters are gone with it.)
            self._pending = [item for item in self._pending if item[1].get_loop() is loop]
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await self._write_group(group)
            except BaseException as err:  # cancelled with the loop: nobody may wait forever
                for _, future in group:
                    if not future.done():
                        future.set_exception(err)
                raise

    async def _write_group(self, group: list[tuple[J, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([job for job, _ in group])
        except Exception as err:
            if len(group) > 1:
                for item in group:
                    await self._write_group([item])
                return
            if not group[0][1].done():
                group[0][1].set_exception(err)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
