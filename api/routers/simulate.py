"""Simulate a journey for a hypothetical contact: the timeline of what it would do."""

from __future__ import annotations

import asyncio
from typing import NoReturn

from fastapi import APIRouter, HTTPException, status

from api.deps import SettingsDep
from api.schemas.common import ErrorOut
from api.schemas.journeys import JourneyName
from api.schemas.simulate import SimulationOut, SimulationRequest
from journeyman.simulate import (
    Simulation,
    SimulationInputError,
    SimulationUnavailableError,
    simulate,
)
from workflows import catalog

router = APIRouter(prefix="/journeys", tags=["journeys"])

# Each simulation runs its own time-skipping server (skipped time is global to a server, so
# two simulations cannot share one); this many run at once, the others wait their turn.
CONCURRENT_SIMULATIONS = 2
_slots = asyncio.Semaphore(CONCURRENT_SIMULATIONS)


@router.post(
    "/{name}/simulate",
    response_model=SimulationOut,
    response_model_exclude_none=True,
    responses={
        404: {"model": ErrorOut, "description": "Unknown journey."},
        422: {"model": ErrorOut, "description": "Bad contact, events or start."},
        503: {"model": ErrorOut, "description": "The simulation server cannot run here."},
    },
)
async def simulate_journey(
    name: JourneyName, body: SimulationRequest, settings: SettingsDep
) -> Simulation:
    """Run the journey's newest version in skipped time, with the real templates and send
    rules (consent, quiet hours, frequency caps) and nothing sent; the timeline of each step,
    what was sent, suppressed or deferred and why, and how the enrollment ended."""
    catalog.get(name)  # 404 before a server is started
    async with _slots:
        try:
            return await simulate(
                name, body.contact, body.events, settings=settings, start_at=body.start_at
            )
        except SimulationInputError as err:
            _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err))
        except SimulationUnavailableError as err:
            _refuse(status.HTTP_503_SERVICE_UNAVAILABLE, str(err))


def _refuse(code: int, detail: str) -> NoReturn:
    raise HTTPException(status_code=code, detail=detail)
