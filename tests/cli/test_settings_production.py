"""Production refuses the development placeholders, and settings refuse what cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from journeyman.settings import Settings

REAL = {"env": "production", "secret_key": "s" * 40, "api_keys": ["k" * 32]}


def test_real_secrets_are_accepted_in_production() -> None:
    assert Settings.model_validate(REAL).env == "production"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"secret_key": "dev-secret-change-me"}, "JOURNEYMAN_SECRET_KEY"),
        ({"api_keys": ["dev-key"]}, "JOURNEYMAN_API_KEYS"),
        ({"crm": "webhook", "crm_webhook_url": "https://crm.example/hook"}, "CRM_WEBHOOK_SECRET"),
        (
            {"crm": "webhook", "crm_webhook_url": "https://x", "crm_webhook_secret": ""},
            "CRM_WEBHOOK_SECRET",
        ),
    ],
)
def test_placeholders_are_refused_in_production(change: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings.model_validate({**REAL, **change})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"crm_fields": "score>x:sideways"}, "crm_fields"),
        ({"score_qualify_at": 20, "score_disqualify_below": 30}, "DISQUALIFY_BELOW"),
        ({"crm_batch_size": 101}, "crm_batch_size"),
        ({"score_half_life_days": 0}, "score_half_life_days"),
    ],
)
def test_settings_that_cannot_work_are_refused(change: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings.model_validate(change)
