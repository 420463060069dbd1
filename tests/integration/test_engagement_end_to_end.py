"""Issue 4's closing check: emails go out through a journey, people open and click them through
the tracking endpoints, some convert, and the stats API, the HTML report and /metrics all tell
the same numbers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from journeyman.smtp_sink import SmtpSink
from persistence import Database, Enrollment
from tests.api.helpers import eventually
from tests.integration.test_end_to_end import AUTH, api, settings, sink  # noqa: F401

pytestmark = pytest.mark.integration
CONTACTS = 5
OPENERS = 3  # contacts 0, 1, 2 open their welcome email
CLICKERS = 2  # contacts 2 and 3 click (3 never loaded the pixel: the click counts as the open)
BUYERS = 2  # contacts 0 and 3 order


def tracking_urls(html: str) -> tuple[str, list[str]]:
    # Links point at JOURNEYMAN_PUBLIC_URL; the test calls the app by path.
    pixel = re.search(r'<img src="https?://[^/"]+(/t/o/[^"]+)"', html)
    clicks = re.findall(r'href="https?://[^/"]+(/t/c/[^"]+)"', html)
    assert pixel and clicks, "the welcome email should carry a pixel and tracked links"
    return pixel.group(1), clicks


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def report_row(html: str, step: str) -> list[int]:
    row = re.search(rf'<tr data-step="{step}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {step} in the report"
    return [int(n) for n in re.findall(r'<td class="num">(\d+)', row.group(1))]


def report_total(html: str, status: str) -> int:
    found = re.search(rf'data-status="{status}"><strong>(\d+)</strong>', html)
    assert found, f"no {status} total in the report"
    return int(found.group(1))


async def test_stats_report_and_metrics_agree_after_real_engagement(
    api: httpx.AsyncClient,  # noqa: F811
    sink: SmtpSink,  # noqa: F811
    database: Database,
) -> None:
    # Enrollments entered from now on are this test's (the database is shared by the session).
    since = datetime.now(UTC).isoformat()
    run = uuid.uuid4().hex[:6]
    contacts = [f"eng-{run}-{n}" for n in range(CONTACTS)]
    for contact_id in contacts:
        await api.put(
            f"/v1/contacts/{contact_id}", json={"email": f"{contact_id}@example.com"}, headers=AUTH
        )
        answer = await api.post(
            "/v1/events", json={"contact_id": contact_id, "name": "signed_up"}, headers=AUTH
        )
        assert answer.status_code == 202, answer.text
    await sink.wait_for(CONTACTS, within=30)
    emails = {m["To"]: m for m in sink.messages}

    for n, contact_id in enumerate(contacts):
        html = emails[f"{contact_id}@example.com"].get_body(("html",)).get_content()  # type: ignore[union-attr]
        pixel, links = tracking_urls(html)
        if n < OPENERS:
            assert (await api.get(pixel)).status_code == 200
        if n in (2, 3):
            click = await api.get(links[0])
            assert click.status_code == 302
            assert "/t/c/" not in click.headers["location"]
    for n in (0, 3):
        order = {
            "contact_id": contacts[n],
            "name": "order_placed",
            "properties": {"order_id": f"o-{run}-{n}"},
        }
        assert (await api.post("/v1/events", json=order, headers=AUTH)).status_code == 202

    async def welcome_rows() -> list[Enrollment]:
        async with database.session() as session:
            query = select(Enrollment).where(
                Enrollment.journey == "welcome_series",
                Enrollment.contact_id.in_(contacts),  # type: ignore[attr-defined]
            )
            return list((await session.exec(query)).all())

    await eventually(
        welcome_rows,
        lambda rows: sorted(r.status for r in rows) == ["active"] * 3 + ["converted"] * 2,
        within=20,
    )

    stats = (
        await api.get("/v1/journeys/welcome_series/stats", params={"since": since}, headers=AUTH)
    ).json()
    assert stats["enrollments"]["entered"] == CONTACTS
    assert stats["enrollments"]["converted"] == BUYERS
    assert stats["enrollments"]["active"] == CONTACTS - BUYERS
    welcome = next(step for step in stats["steps"] if step["name"] == "welcome")
    assert (welcome["sent"], welcome["opened"], welcome["clicked"]) == (CONTACTS, 4, CLICKERS)
    assert welcome["converted_after"] == BUYERS

    report = await api.get("/journeys/welcome_series", params={"since": since}, headers=AUTH)
    assert report.status_code == 200, report.text
    # reached, sent, suppressed, failed, delivered, opened, clicked, converted after
    row = report_row(report.text, "welcome")
    assert (row[0], row[1], row[5], row[6], row[7]) == (
        welcome["reached"],
        welcome["sent"],
        welcome["opened"],
        welcome["clicked"],
        BUYERS,
    )
    assert report_total(report.text, "converted") == BUYERS
    assert report_total(report.text, "entered") == CONTACTS

    # /metrics counts the whole database; compare it with the all-time stats of the journey.
    everything = (await api.get("/v1/journeys/welcome_series/stats", headers=AUTH)).json()
    scraped = (await api.get("/metrics", headers=AUTH)).text
    counts = everything["enrollments"]
    assert (
        metric(scraped, "journeyman_enrollments_active", journey="welcome_series")
        == counts["active"]
    )
    assert (
        metric(
            scraped,
            "journeyman_enrollments_ended_total",
            journey="welcome_series",
            outcome="converted",
        )
        == counts["converted"]
    )
    assert (
        metric(scraped, "journeyman_enrollments_started_total", journey="welcome_series")
        == counts["entered"]
    )
