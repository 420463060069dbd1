"""Helpers for the API tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlmodel import col, select
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from persistence import Database, Enrollment
from workflows.contracts import STATE_QUERY, EnrollmentResult, EnrollmentState, SendRequest

API_KEY = "test-key"
T = TypeVar("T")


class SentMessages(list[SendRequest]):
    """Every send the journeys asked for, in order."""

    def for_contact(self, contact_id: str) -> list[SendRequest]:
        return [request for request in self if request.contact_id == contact_id]

    async def settled(self, contact_id: str, count: int) -> list[SendRequest]:
        """The contact's sends, once there are `count` of them."""

        async def sends() -> list[SendRequest]:
            return self.for_contact(contact_id)

        return await eventually(sends, lambda found: len(found) == count)


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *, within: float = 10.0
) -> T:
    """Poll `probe` until its value satisfies `until`, for effects a worker applies on its own
    schedule (lifecycle rows, workflow state); returns that value."""
    last: list[T] = []
    try:
        async with asyncio.timeout(within):
            while True:
                value = await probe()
                if until(value):
                    return value
                last[:] = [value]
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not met within {within}s; last value: {last!r}") from None


def event(contact_id: str, name: str, **properties: Any) -> dict[str, Any]:
    """An event body with a fresh id."""
    return {
        "id": f"e-{uuid.uuid4().hex}",
        "contact_id": contact_id,
        "name": name,
        "properties": properties,
    }


async def enrollment_rows(database: Database, contact_id: str) -> list[Enrollment]:
    async with database.session() as session:
        query = (
            select(Enrollment)
            .where(Enrollment.contact_id == contact_id)
            .order_by(col(Enrollment.entered_at))
        )
        return list((await session.exec(query)).all())


async def wait_for_rows(
    database: Database, contact_id: str, until: Callable[[list[Enrollment]], bool]
) -> list[Enrollment]:
    """The contact's enrollment rows once they satisfy `until` (the worker writes them)."""
    return await eventually(lambda: enrollment_rows(database, contact_id), until)


async def result_of(
    client: Client, workflow_id: str, run_id: str | None = None
) -> EnrollmentResult:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id, result_type=EnrollmentResult)
    async with asyncio.timeout(10):
        result: EnrollmentResult = await handle.result()
    return result


async def parked_in(client: Client, workflow_id: str, step: str) -> EnrollmentState:
    """Wait until the enrollment sits in `step` (a timer), so that a signal sent next finds it
    there rather than in the middle of an activity: API tests do not race the runtime."""

    async def state() -> EnrollmentState | None:
        try:
            found: EnrollmentState = await client.get_workflow_handle(workflow_id).query(
                STATE_QUERY, result_type=EnrollmentState
            )
        except (RPCError, WorkflowQueryFailedError):  # not started yet
            return None
        return found

    found = await eventually(state, lambda s: s is not None and s.current_step == step)
    assert found is not None
    return found
