"""Rules: which events they match, with which filters, and the defaults the issue asks for."""

from __future__ import annotations

import pytest

from journeyman.engagement import EMAIL_CLICKED
from journeyman.scoring.rules import (
    RULES,
    ScoreRule,
    ScoringModel,
    equals,
    one_of,
    startswith,
)
from journeyman.scoring.starter import is_scored
from journeyman.settings import Settings
from workflows.contracts import Event


def test_startswith_matches_the_prefix_only_on_a_string_property() -> None:
    rule = ScoreRule("pricing", "page_viewed", 20, where=[startswith("path", "/pricing")])
    assert rule.matches("page_viewed", {"path": "/pricing"})
    assert rule.matches("page_viewed", {"path": "/pricing/enterprise"})
    assert not rule.matches("page_viewed", {"path": "/blog/pricing"})
    assert not rule.matches("page_viewed", {"path": 42})
    assert not rule.matches("page_viewed", {})
    assert not rule.matches("page_opened", {"path": "/pricing"})


def test_equals_and_one_of_need_the_property_and_every_filter_must_pass() -> None:
    rule = ScoreRule(
        "big_trial",
        "trial_started",
        10,
        where=[equals("plan", "team"), one_of("seats", [10, 20, 50])],
    )
    assert rule.matches("trial_started", {"plan": "team", "seats": 20})
    assert not rule.matches("trial_started", {"plan": "team", "seats": 5})
    assert not rule.matches("trial_started", {"plan": "solo", "seats": 20})
    assert not rule.matches("trial_started", {"seats": 20})


def test_several_rules_can_match_one_event() -> None:
    model = ScoringModel(
        rules=(
            ScoreRule("any_page", "page_viewed", 1),
            ScoreRule("pricing", "page_viewed", 20, where=[startswith("path", "/pricing")]),
        )
    )
    assert [r.name for r in model.matching("page_viewed", {"path": "/pricing"})] == [
        "any_page",
        "pricing",
    ]
    assert [r.name for r in model.matching("page_viewed", {"path": "/"})] == ["any_page"]


def test_the_default_rules_score_what_the_issue_lists() -> None:
    model = ScoringModel()

    def points(name: str, **properties: object) -> float:
        return sum(rule.points for rule in model.matching(name, properties))

    assert points("page_viewed", path="/pricing") == 20
    assert points("page_viewed", path="/docs") == 0
    assert points(EMAIL_CLICKED, url="https://x") == 5
    assert points("webinar_attended") == 15
    assert points("whitepaper_downloaded") == 10
    assert points("demo_attended") == 20
    assert points("unsubscribed", channel="email", source="api") == -30
    assert points("unsubscribed", channel="sms", source="api") == 0
    pricing = next(rule for rule in RULES if rule.event == "page_viewed")
    assert pricing.daily_cap == 40


def test_the_router_starts_a_scorer_only_for_events_a_rule_scores() -> None:
    assert is_scored(Event("e1", "c1", "page_viewed", {"path": "/pricing"}))
    assert not is_scored(Event("e2", "c1", "page_viewed", {"path": "/about"}))
    assert not is_scored(Event("e3", "c1", "order_placed", {}))
    assert not is_scored(Event("e4", "c1", "lead.qualified", {"score": 50}))


def test_the_model_takes_half_life_and_thresholds_from_the_settings() -> None:
    settings = Settings(
        score_half_life_days=7, score_qualify_at=80, score_disqualify_below=40, api_keys=["k"]
    )
    model = ScoringModel.from_settings(settings)
    assert model.half_life.days == 7
    assert (model.qualify_at, model.disqualify_below) == (80, 40)
    assert model.rules == RULES


def test_bad_models_are_refused() -> None:
    with pytest.raises(ValueError, match="daily_cap"):
        ScoreRule("r", "e", 5, daily_cap=0)
    with pytest.raises(ValueError, match="unique"):
        ScoringModel(rules=(ScoreRule("r", "a", 1), ScoreRule("r", "b", 2)))
    with pytest.raises(ValueError, match="disqualify_below"):
        ScoringModel(qualify_at=30, disqualify_below=50)
