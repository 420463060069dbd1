"""The journey runtime's guarantees, shown on small sample journeys."""

import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.journeys.harness import enrolled
from tests.journeys.sample_journeys import AskAndListen, HandsOn, RepeatsAStep, WaitsUndeclared
from workflows.contracts import (
    ERR_JOURNEY_DEFINITION,
    EVENT_SIGNAL,
    JOURNEY_STEP,
    SEND_MESSAGE,
    Event,
    SendRequest,
    SendResult,
)
from workflows.runtime import Journey, journey


async def test_wait_for_returns_the_event_and_the_branch_follows(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.advance(timedelta(hours=3))
        await run.event("clicked", link="https://example.com/a")
        result = await run.result()

    assert result.status == "completed"
    steps = [(s.step, s.after) for s in run.capture.sends]
    assert steps[:2] == [("ask", timedelta(0)), ("thanks", timedelta(hours=3))]
    assert run.capture.sends[1].context == {"link": "https://example.com/a"}
    # Nothing more arrived: the reply wait timed out after 2 hours.
    assert steps[2] == ("close", timedelta(hours=5))
    assert run.capture.sends[2].context == {"replied": False}
    outcomes = {s.name: s.outcome for s in result.steps}
    assert outcomes["await_click"] == "received clicked"
    assert outcomes["await_reply"] == "timed out"


async def test_wait_for_times_out_into_the_other_branch(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        result = await run.result()

    assert [(s.step, s.after) for s in run.capture.sends] == [
        ("ask", timedelta(0)),
        ("nudge", timedelta(days=1)),
        ("close", timedelta(days=1, hours=2)),
    ]
    assert result.status == "completed"


async def test_a_repeated_event_id_takes_effect_once(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.advance(timedelta(hours=1))
        await run.event("clicked", event_id="evt-1", link="https://example.com/a")
        await run.advance(timedelta(minutes=10))
        # The caller retries the same event: it must not also satisfy the next wait.
        await run.event("clicked", event_id="evt-1", link="https://example.com/a")
        await run.result()

    assert run.capture.sends[-1].context == {"replied": False}


async def test_an_event_arriving_during_a_send_is_not_lost(time_env: WorkflowEnvironment) -> None:
    """The click lands while the `ask` send is still in flight, before `wait_for` begins."""
    sent_steps: list[str] = []

    @activity.defn(name=SEND_MESSAGE)
    async def send_and_get_clicked(request: SendRequest) -> SendResult:
        if request.step == "ask":
            click = Event(
                id=uuid.uuid4().hex,
                contact_id=request.contact_id,
                name="clicked",
                properties={"link": "https://example.com/fast"},
            )
            handle = activity.client().get_workflow_handle(request.workflow_id)
            await handle.signal(EVENT_SIGNAL, click)
        sent_steps.append(request.step)
        return SendResult(message_id=request.message_id, status="sent")

    async with enrolled(time_env, AskAndListen, send_override=send_and_get_clicked) as run:
        result = await run.result()

    assert sent_steps[:2] == ["ask", "thanks"]
    assert {s.name: s.outcome for s in result.steps}["await_click"] == "received clicked"


async def test_state_query_and_search_attribute_follow_the_current_step(
    time_env: WorkflowEnvironment,
) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.advance(timedelta(hours=1))
        state = await run.state()
        description = await run.handle.describe()
        await run.event("stop")
        result = await run.result()

    assert state.status == "active"
    assert state.current_step == "await_click"
    assert state.waiting_for == ["clicked"]
    assert state.wait_until is not None
    waited_from = state.steps[0].at
    assert abs(state.wait_until - waited_from - timedelta(days=1)) < timedelta(seconds=1)
    assert [s.name for s in state.steps] == ["ask"]
    assert state.journey == "test_ask_and_listen" and state.version == 1
    assert description.typed_search_attributes.get(JOURNEY_STEP) == "await_click"
    assert result.status == "exited"


async def test_lifecycle_is_recorded_entered_steps_ended(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.result()

    kinds = [(r.kind, r.step) for r in run.capture.lifecycle]
    assert kinds[0] == ("entered", None)
    assert kinds[-1] == ("ended", None)
    assert run.capture.lifecycle[-1].status == "completed"
    assert [step for kind, step in kinds if kind == "step"] == [
        "ask",
        "await_click",
        "nudge",
        "await_reply",
        "close",
    ]


async def test_operator_exit_ends_the_enrollment(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.advance(timedelta(hours=1))
        await run.exit("operator")
        result = await run.result()

    assert result.status == "exited"
    assert result.ended_by == "operator"
    assert run.capture.lifecycle[-1].status == "exited"


async def test_read_contact_branches_and_start_hands_on(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, HandsOn, attributes={"tier": "vip"}) as run:
        await run.result()
    assert [r.journey for r in run.capture.starts] == ["welcome_series"]
    assert run.capture.starts[0].contact_id == run.contact_id

    async with enrolled(time_env, HandsOn, attributes={"tier": "basic"}) as run:
        await run.result()
    assert run.capture.starts == []


@pytest.mark.parametrize("broken", [WaitsUndeclared, RepeatsAStep])
async def test_definition_mistakes_fail_loudly(
    time_env: WorkflowEnvironment, broken: type[Journey]
) -> None:
    async with enrolled(time_env, broken) as run:
        with pytest.raises(WorkflowFailureError) as failure:
            await run.result()

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ERR_JOURNEY_DEFINITION


def test_journey_declarations_are_validated_at_import() -> None:
    with pytest.raises(TypeError, match="cannot both trigger and end"):

        @journey
        class Contradiction(Journey):
            name = "contradiction"
            triggers = ("order_placed",)
            goals = ("order_placed",)

            async def steps(self) -> None:
                return None

    with pytest.raises(TypeError, match="steps"):

        @journey
        class Empty(Journey):
            name = "empty"


@pytest.mark.parametrize(("event", "status"), [("stop", "exited"), ("clicked", "completed")])
async def test_an_exit_arriving_during_a_send_ends_the_enrollment_at_once(
    time_env: WorkflowEnvironment, event: str, status: str
) -> None:
    """The exit lands while the first send is in flight: nothing after it may run.

    With a non-ending event in the same place (the control case) the journey goes on.
    """
    sends: list[str] = []

    @activity.defn(name=SEND_MESSAGE)
    async def send_and_get_stopped(request: SendRequest) -> SendResult:
        sends.append(request.step)
        if request.step == "ask":
            stop = Event(
                id=uuid.uuid4().hex,
                contact_id=request.contact_id,
                name=event,
                properties={"link": "https://example.com/x"},
            )
            await (
                activity.client()
                .get_workflow_handle(request.workflow_id)
                .signal(EVENT_SIGNAL, stop)
            )
        return SendResult(message_id=request.message_id, status="sent")

    async with enrolled(time_env, AskAndListen, send_override=send_and_get_stopped) as run:
        result = await run.result()

    assert result.status == status
    if status == "exited":
        assert sends == ["ask"]
        assert result.ended_by == "event:stop"
        assert run.capture.lifecycle[-1].status == "exited"
    else:
        assert sends[:2] == ["ask", "thanks"]


async def test_operator_cancel_is_recorded_as_an_exit(time_env: WorkflowEnvironment) -> None:
    async with enrolled(time_env, AskAndListen) as run:
        await run.advance(timedelta(hours=1))
        await run.handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await run.result()

    assert run.capture.lifecycle[-1].kind == "ended"
    assert run.capture.lifecycle[-1].status == "exited"
    assert run.capture.lifecycle[-1].outcome == "cancelled"
