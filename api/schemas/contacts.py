"""Contacts: the people journeys talk to."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import ContactId, JsonObject, UtcDatetime


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _iana_timezone(value: str) -> str:
    # Checked against the IANA list rather than by loading it, so no path-like value ever
    # reaches the zoneinfo file lookup.
    if value not in _timezones():
        raise ValueError(f"'{value}' is not an IANA time zone such as 'Europe/Paris'")
    return value


_EMAIL_PART = r"[^@\s\x00-\x1f\x7f]+"
Email = Annotated[
    str,
    StringConstraints(max_length=320, pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"),
]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9][0-9 ().-]{2,31}$")]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_timezone)]
Locale = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$")
]


class ContactBase(BaseModel):
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = Field(default=None, examples=["Europe/Paris"])
    locale: Locale | None = Field(default=None, examples=["fr-FR"])
    attributes: JsonObject = Field(default_factory=dict)


class ContactUpsert(ContactBase):
    """Fields left out keep their stored value; `null` clears one; `attributes` is replaced."""

    model_config = ConfigDict(extra="forbid")


class ContactPublic(ContactBase):
    model_config = ConfigDict(from_attributes=True)

    contact_id: ContactId
    created_at: UtcDatetime
    updated_at: UtcDatetime
