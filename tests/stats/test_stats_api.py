"""GET /v1/journeys/{name}/stats over the known dataset of `seed.py`, on the real database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.stats.seed import FUNNEL_WINDOW, JOURNEY

URL = f"/v1/journeys/{JOURNEY}/stats"


async def stats(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get(URL, params={**FUNNEL_WINDOW, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def step(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in body["steps"] if s["name"] == name)
    return found


async def test_enrollments_by_status_in_the_window(stats_api: httpx.AsyncClient) -> None:
    body = await stats(stats_api)
    # The enrollment of 2001-04-01 is outside [since, until): `until` is exclusive.
    assert body["enrollments"] == {
        "entered": 12,
        "active": 2,
        "converted": 5,
        "exited": 2,
        "completed": 2,
        "failed": 1,
    }
    assert body["rates"]["converted"] == pytest.approx(5 / 12)
    assert body["rates"]["failed"] == pytest.approx(1 / 12)


async def test_each_step_in_journey_order_with_counts_and_rates(
    stats_api: httpx.AsyncClient,
) -> None:
    body = await stats(stats_api)
    assert [s["name"] for s in body["steps"]] == ["grace_period", "first_reminder"]
    wait = step(body, "grace_period")
    assert (wait["kind"], wait["reached"], wait["converted_after"]) == ("wait", 12, 5)
    assert wait["rates"]["reached"] == 1.0
    assert wait["rates"]["delivered"] is None  # nothing sent: no rate, no division by zero
    send = step(body, "first_reminder")
    assert {key: send[key] for key in send if key != "rates"} == {
        "name": "first_reminder",
        "kind": "send",
        # 8 recorded steps, plus the failed send known only from its message.
        "reached": 9,
        "sent": 6,
        "suppressed": {"frequency_cap": 1, "unsubscribed": 1},
        "failed": 1,
        "delivered": 5,
        "opened": 3,
        "clicked": 1,
        "converted_after": 4,
    }
    assert send["rates"] == pytest.approx(
        {
            "reached": 9 / 12,
            "delivered": 5 / 6,
            "opened": 3 / 6,
            "clicked": 1 / 6,
            "converted_after": 4 / 9,
        }
    )


async def test_version_filter(stats_api: httpx.AsyncClient) -> None:
    v2 = await stats(stats_api, version=2)
    assert v2["version"] == 2
    assert v2["enrollments"]["entered"] == 10
    assert v2["enrollments"]["converted"] == 4
    assert step(v2, "grace_period")["reached"] == 10
    v1 = await stats(stats_api, version=1)
    assert v1["enrollments"] == {
        "entered": 2,
        "active": 1,
        "converted": 1,
        "exited": 0,
        "completed": 0,
        "failed": 0,
    }
    assert [s["name"] for s in v1["steps"]] == ["grace_period"]


async def test_since_filter_and_a_plain_date(stats_api: httpx.AsyncClient) -> None:
    # From the sixth v2 enrollment (entered at 05:00) on, plus the two v1 ones of March 5th.
    later = await stats(stats_api, since="2001-03-01T05:00:00+00:00")
    assert later["enrollments"]["entered"] == 7
    assert step(later, "first_reminder")["sent"] == 1
    # A date alone is its midnight UTC; an offset is honoured.
    by_date = await stats(stats_api, since="2001-03-05", until="2001-03-06")
    assert by_date["enrollments"]["entered"] == 2
    shifted = await stats(stats_api, since="2001-03-01T06:00:00+01:00")
    assert shifted["enrollments"]["entered"] == 7
    assert shifted["since"].startswith("2001-03-01T05:00:00")


async def test_an_empty_window_has_zeros_and_null_rates(stats_api: httpx.AsyncClient) -> None:
    body = await stats(stats_api, since="1990-01-01", until="1990-01-02")
    assert body["enrollments"]["entered"] == 0
    assert body["rates"]["converted"] is None
    assert body["steps"] == []
    assert body["experiments"] == []


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/v1/journeys/nope/stats", {}, 404, "unknown journey 'nope'"),
        (URL, {"version": 9}, 404, "no version 9"),
        (URL, {"since": "yesterday"}, 422, "since"),
        (URL, {"until": "2001-13-01"}, 422, "until"),
        (URL, {"version": "two"}, 422, "version"),
        (URL, {"since": "2001-03-02", "until": "2001-03-01"}, 422, "'since' must not be after"),
    ],
)
async def test_bad_requests_get_a_clear_4xx(
    stats_api: httpx.AsyncClient, path: str, params: dict[str, Any], status: int, says: str
) -> None:
    response = await stats_api.get(path, params=params)
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])


async def test_the_stats_need_the_api_key(stats_api: httpx.AsyncClient) -> None:
    response = await stats_api.get(URL, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
