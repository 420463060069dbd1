"""The pure parts of the send rules: when a cap frees a slot, and what "now" is."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.caps import slot_frees_at
from activities.policy import send_time
from journeyman.settings import FrequencyCap

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = FrequencyCap("email", 2, timedelta(hours=24))
WEEK = FrequencyCap("email", 3, timedelta(days=7))


def hours_ago(*hours: float) -> list[datetime]:
    return sorted(NOW - timedelta(hours=h) for h in hours)


def test_below_every_cap_there_is_a_slot_now() -> None:
    assert slot_frees_at([], NOW, [DAY, WEEK]) is None
    assert slot_frees_at(hours_ago(30, 2), NOW, [DAY, WEEK]) is None


def test_a_full_cap_frees_when_its_oldest_message_leaves_the_window() -> None:
    assert slot_frees_at(hours_ago(10, 2), NOW, [DAY]) == NOW + timedelta(hours=14)


def test_a_message_exactly_one_window_old_no_longer_counts() -> None:
    assert slot_frees_at(hours_ago(24, 2), NOW, [DAY]) is None


def test_over_a_lowered_cap_enough_messages_must_leave() -> None:
    # Three inside a cap of two: a slot frees when the second oldest leaves.
    assert slot_frees_at(hours_ago(20, 10, 2), NOW, [DAY]) == NOW + timedelta(hours=14)


def test_with_several_full_caps_the_latest_moment_frees_them_all() -> None:
    times = hours_ago(100, 10, 2)  # 2 in the day, 3 in the week
    assert slot_frees_at(times, NOW, [DAY, WEEK]) == NOW - timedelta(hours=100) + WEEK.window


def test_now_is_the_scheduled_time_of_the_attempt() -> None:
    env = ActivityEnvironment()
    later = datetime.now(UTC) + timedelta(days=30)
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=later)

    assert env.run(send_time) == later


def test_now_is_never_before_the_wall_clock() -> None:
    # An attempt scheduled an hour ago (a backlog) is decided at the time it runs.
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, current_attempt_scheduled_time=datetime.now(UTC) - timedelta(hours=1)
    )
    before = datetime.now(UTC)

    assert env.run(send_time) >= before
