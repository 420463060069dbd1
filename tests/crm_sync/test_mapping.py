"""The field mapping: the default, the `JOURNEYMAN_CRM_FIELDS` adjustments, and their errors."""

from __future__ import annotations

import pytest

from activities.crm_sync import crm_parts
from activities.rendering import TemplateRenderer
from journeyman.crm.mapping import DEFAULT_FIELDS, FieldMap, FieldMapping, MappingError
from journeyman.settings import Settings
from persistence import Database
from tests.crm_sync.helpers import Outbox


def test_the_default_mapping_covers_score_stage_and_chosen_attributes() -> None:
    mapping = FieldMapping.default()
    assert FieldMap("score", "journeyman_score", "push") in mapping.fields
    assert FieldMap("lifecycle_stage", "lifecyclestage", "both") in mapping.fields
    assert FieldMap("attributes.company", "company", "both") in mapping.fields
    assert mapping.by_remote("HUBSPOT_OWNER_ID") == FieldMap(
        "attributes.hubspot_owner_id", "hubspot_owner_id", "pull"
    )
    assert "attributes.hubspot_owner_id" not in {f.local for f in mapping.pushed}


def test_an_empty_setting_is_the_default() -> None:
    assert FieldMapping.from_settings(Settings()).fields == DEFAULT_FIELDS


def test_entries_replace_add_and_drop_fields() -> None:
    mapping = FieldMapping.parse(
        " score>hs_lead_score:push , attributes.plan>plan:both,phone>phone:off,"
    )
    assert mapping.by_remote("hs_lead_score") == FieldMap("score", "hs_lead_score", "push")
    assert mapping.by_remote("journeyman_score") is None
    assert mapping.by_remote("plan") == FieldMap("attributes.plan", "plan", "both")
    assert mapping.by_remote("phone") is None
    assert mapping.pushed_locals(["phone", "attributes.plan", "attributes.other", "score"]) == [
        "attributes.plan",
        "score",
    ]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("score", "expected local>remote:direction"),
        ("score>:push", "expected local>remote:direction"),
        ("score>journeyman_score", "expected local>remote:direction"),
        ("score>journeyman_score:sideways", "unknown direction 'sideways'"),
        ("name>firstname:both", "unknown local field 'name'"),
        ("attributes.>x:both", "unknown local field"),
        ("phone>my phone:both", "is not a CRM property name"),
        ("score>journeyman_score:both", "score can only be pushed"),
        ("email>email:pull", "email can only be pushed"),
        ("attributes.mobile>phone:push", "'phone' is mapped twice"),
    ],
)
def test_a_bad_setting_says_which_entry_and_why(setting: str, complaint: str) -> None:
    with pytest.raises(MappingError, match="JOURNEYMAN_CRM_FIELDS") as caught:
        FieldMapping.parse(setting)
    assert complaint in str(caught.value)


def test_the_worker_parts_refuse_a_bad_mapping(database: Database, settings: Settings) -> None:
    bad = settings.model_copy(update={"crm_fields": "score>x:pull"})
    with pytest.raises(MappingError, match="score can only be pushed"):
        crm_parts(
            database=database,
            settings=bad,
            renderer=TemplateRenderer.from_settings(bad),
            mailer=Outbox(),
            connector=None,
        )
