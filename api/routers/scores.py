"""Lead scores: `GET /v1/contacts/{contact_id}/score`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import SessionDep, SettingsDep
from api.schemas.common import ContactId, ErrorOut
from api.schemas.scores import DEFAULT_HISTORY, MAX_HISTORY, ScoreChangePublic, ScorePublic
from api.services.contacts import get_contact
from journeyman.scoring.store import current_score, score_history
from persistence import LeadScore
from persistence.models import utcnow

router = APIRouter(prefix="/contacts", tags=["scores"])


@router.get("/{contact_id}/score", response_model=ScorePublic, responses={404: {"model": ErrorOut}})
async def read_score(
    contact_id: Annotated[
        ContactId, Path(description="The backend's id for the person.", examples=["c-1042"])
    ],
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY, description="History entries, newest first.")
    ] = DEFAULT_HISTORY,
) -> ScorePublic:
    """The contact's lead score now (decay applied), whether it is qualified, and how it got
    there. A contact no rule has scored yet has score 0 and an empty history."""
    await get_contact(session=session, contact_id=contact_id)
    half_life = timedelta(days=settings.score_half_life_days)
    score = await current_score(session, contact_id, utcnow(), half_life)
    row = await session.get(LeadScore, contact_id)
    changes = await score_history(session, contact_id, limit)
    return ScorePublic(
        contact_id=contact_id,
        score=score or 0.0,
        qualified=bool(row and row.qualified),
        qualify_at=settings.score_qualify_at,
        disqualify_below=settings.score_disqualify_below,
        half_life_days=settings.score_half_life_days,
        history=[
            ScoreChangePublic(
                event_id=change.event_id,
                event_name=change.event_name,
                delta=change.delta,
                score=change.score,
                at=change.at,
                rules=change.rule_points,
                emitted=change.emitted,
            )
            for change in changes
        ],
    )
