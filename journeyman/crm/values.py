"""Reading and writing the local side of mapped fields on a `Contact`."""

from __future__ import annotations

from typing import Any

from journeyman.crm.mapping import (
    ATTRIBUTE_PREFIX,
    EMAIL,
    LIFECYCLE_STAGE,
    PHONE,
    SCORE,
    FieldMap,
)
from persistence import Contact

# What a CRM property holds: HubSpot takes and gives strings, numbers or null.
Value = str | int | float | bool | None
# Stored columns are this wide (persistence.models.Contact).
_COLUMN_MAX = {PHONE: 32, LIFECYCLE_STAGE: 40}
# Scores are shown to people in the CRM: two decimals are plenty.
SCORE_DIGITS = 2


def local_fields(contact: Contact) -> dict[str, Any]:
    """Every field a mapping could name, by local name (the score is not a contact column)."""
    fields: dict[str, Any] = {
        EMAIL: contact.email,
        PHONE: contact.phone,
        LIFECYCLE_STAGE: contact.lifecycle_stage,
    }
    for name, value in (contact.attributes or {}).items():
        fields[f"{ATTRIBUTE_PREFIX}{name}"] = value
    return fields


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Local names whose value differs (a field present on one side only counts)."""
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def local_value(contact: Contact, entry: FieldMap, score: float | None) -> Value:
    """The value to send for `entry`; nested attribute values go as JSON-ish text."""
    if entry.local == SCORE:
        return None if score is None else round(score, SCORE_DIGITS)
    value = local_fields(contact).get(entry.local)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def apply_pulled(contact: Contact, entry: FieldMap, value: Value) -> Any:
    """Write a CRM value into the contact (not committed); returns the previous value.

    An empty string is how HubSpot says "cleared": it clears the field here too.
    """
    cleared = value is None or value == ""
    attribute = entry.attribute
    if attribute is not None:
        attributes = dict(contact.attributes or {})
        previous = attributes.get(attribute)
        if cleared:
            attributes.pop(attribute, None)
        else:
            attributes[attribute] = value
        # A new dict, so SQLAlchemy sees the JSON column change.
        contact.attributes = attributes
        return previous
    previous = getattr(contact, entry.local)
    text = None if cleared else str(value)[: _COLUMN_MAX.get(entry.local, 320)]
    setattr(contact, entry.local, text)
    return previous
