"""`GET /v1/segments` and `GET /v1/segments/{name}`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.segments import all_segments
from journeyman.settings import Settings
from persistence import Contact, Database, LeadScore
from persistence.models import utcnow
from tests.api.helpers import API_KEY
from tests.support import running_app

from .conftest import Generated, unseed

PREFIX = "segapi-"


@pytest.fixture
async def api(
    time_env: WorkflowEnvironment, database: Database, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    # Segments never talk to Temporal; any client will do for the app's lifespan.
    settings = Settings(database_url=database_url, api_keys=[API_KEY])
    async with (
        running_app(settings, time_env.client, database) as app,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeyman.test",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client,
    ):
        yield client
    await unseed(Generated(database, PREFIX))


async def _qualified_contacts(database: Database, count: int) -> list[str]:
    ids = [f"{PREFIX}{uuid.uuid4().hex[:10]}" for _ in range(count)]
    async with database.session() as session:
        for contact_id in ids:
            session.add(Contact(contact_id=contact_id, email=f"{contact_id}@example.com"))
            session.add(LeadScore(contact_id=contact_id, points=10_000, as_of=utcnow()))
        await session.commit()
    return sorted(ids)


async def test_the_list_shows_every_segment_with_its_definition(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/segments")
    assert answer.status_code == 200
    body = answer.json()
    assert [s["name"] for s in body] == [s.name for s in all_segments()]
    inactive = next(s for s in body if s["name"] == "inactive_30d")
    assert "no event in the last 30 days" in inactive["definition"]
    assert inactive["description"]


async def test_members_page_by_contact_id_with_their_email(
    api: httpx.AsyncClient, database: Database
) -> None:
    ours = await _qualified_contacts(database, 7)
    walked: list[dict[str, str]] = []
    after: str | None = None
    counts: set[int] = set()
    while True:
        params: dict[str, str | int] = {"limit": 3} | ({"after": after} if after else {})
        answer = await api.get("/v1/segments/qualified_leads", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        counts.add(body["count"])
        assert len(body["members"]) <= 3
        walked += body["members"]
        after = body["next_after"]
        if after is None:
            break
        assert after == body["members"][-1]["contact_id"]
    ids: list[str] = [m["contact_id"] for m in walked]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert counts == {len(ids)}
    assert [m for m in walked if m["contact_id"] in ours] == [
        {"contact_id": i, "email": f"{i}@example.com"} for i in ours
    ]

    only = await api.get("/v1/segments/qualified_leads", params={"count_only": "true"})
    assert only.json() == {
        "name": "qualified_leads",
        "count": len(ids),
        "members": None,
        "next_after": None,
    }


async def test_an_unknown_segment_is_404_with_a_message(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/segments/nobody")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "unknown segment 'nobody'"}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "many"},
        {"count_only": "perhaps"},
        {"after": "has space"},
        {"after": "a" * 201},
    ],
)
async def test_bad_parameters_are_422(api: httpx.AsyncClient, params: dict[str, str | int]) -> None:
    answer = await api.get("/v1/segments/qualified_leads", params=params)
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], list)
