"""`GET /metrics` on the API, scraped over HTTP through the app."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from persistence import Database, Enrollment, Message
from tests.metrics.helpers import API_KEY, AUTH, family_names, sample


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": API_KEY},
    ],
    ids=["none", "wrong key", "not bearer", "no scheme"],
)
async def test_metrics_need_the_api_key_as_bearer(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "journeyman_" not in response.text


async def test_events_ingested_and_routed_are_counted_by_name_and_action(
    http: httpx.AsyncClient,
) -> None:
    contact = f"c-{uuid.uuid4().hex[:12]}"
    before = await scrape(http)
    bodies = [
        {"id": f"e-{uuid.uuid4().hex}", "contact_id": contact, "name": "signed_up"},
        # The same contact signs up again: the welcome series does not start twice.
        {"id": f"e-{uuid.uuid4().hex}", "contact_id": contact, "name": "signed_up"},
        # A name no journey declares: counted, under the shared label.
        {"id": f"e-{uuid.uuid4().hex}", "contact_id": contact, "name": "viewed:/product/7"},
    ]
    routed: Counter[tuple[str, str, str]] = Counter()
    for body in bodies:
        response = await http.post("/v1/events", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        for result in response.json()["journeys"]:
            routed[(body["name"], result["journey"], result["action"])] += 1
    # A retry of a stored id answers from the database: neither ingested nor routed again.
    assert (await http.post("/v1/events", json=bodies[0], headers=AUTH)).status_code == 202
    after = await scrape(http)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("journeyman_events_ingested_total", event="signed_up") == 2
    assert moved("journeyman_events_ingested_total", event="(other)") == 1
    assert moved("journeyman_events_ingested_total", event="viewed:/product/7") == 0
    # The answers say what happened; the counters must say the same.
    assert routed[("signed_up", "welcome_series", "started")] == 1
    assert routed[("signed_up", "welcome_series", "skipped")] == 1
    for (event, journey, action), count in routed.items():
        labels = {"event": event, "journey": journey, "action": action}
        assert moved("journeyman_events_routed_total", **labels) == count, labels


async def test_enrollments_and_messages_are_the_database_totals_at_scrape_time(
    http: httpx.AsyncClient, database: Database
) -> None:
    # A journey and a channel of this test alone, so the totals are exact in a shared database.
    journey, channel = f"metrics-{uuid.uuid4().hex[:8]}", f"ch-{uuid.uuid4().hex[:8]}"
    statuses = ["active"] * 3 + ["converted"] * 2 + ["exited"]
    await _seed(database, journey, channel, statuses, ["sent", "sent", "suppressed", "failed"])

    text = await scrape(http)
    assert sample(text, "journeyman_enrollments_started_total", journey=journey) == 6
    assert sample(text, "journeyman_enrollments_active", journey=journey) == 3
    ended = "journeyman_enrollments_ended_total"
    assert sample(text, ended, journey=journey, outcome="converted") == 2
    assert sample(text, ended, journey=journey, outcome="exited") == 1
    assert sample(text, ended, journey=journey, outcome="active") == 0
    assert sample(text, "journeyman_messages", channel=channel, status="sent") == 2
    assert sample(text, "journeyman_messages", channel=channel, status="suppressed") == 1
    assert sample(text, "journeyman_messages", channel=channel, status="failed") == 1

    # Read afresh on every scrape, never cached.
    await _seed(database, journey, channel, ["completed"], ["sent"])
    text = await scrape(http)
    assert sample(text, "journeyman_enrollments_started_total", journey=journey) == 7
    assert sample(text, ended, journey=journey, outcome="completed") == 1
    assert sample(text, "journeyman_messages", channel=channel, status="sent") == 3


async def test_metrics_speak_openmetrics_when_asked_and_include_the_process(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    names = family_names(await scrape(http))
    assert {"journeyman_events_ingested", "process_cpu_seconds", "python_info"} <= names


async def _seed(
    database: Database,
    journey: str,
    channel: str,
    enrollment_statuses: list[str],
    message_statuses: list[str],
) -> None:
    now = datetime.now(UTC)
    async with database.session() as session:
        for status in enrollment_statuses:
            run_id = uuid.uuid4().hex
            session.add(
                Enrollment(
                    run_id=run_id,
                    workflow_id=f"journey:{journey}:{run_id}",
                    journey=journey,
                    version=1,
                    contact_id="c-metrics",
                    status=status,
                    entered_at=now,
                    ended_at=None if status == "active" else now,
                )
            )
        for status in message_statuses:
            session.add(
                Message(
                    message_id=uuid.uuid4().hex,
                    workflow_id="wf",
                    run_id="run",
                    journey=journey,
                    step="step",
                    contact_id="c-metrics",
                    channel=channel,
                    template="t",
                    status=status,
                )
            )
        await session.commit()
