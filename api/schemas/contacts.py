"""Contacts: the people journeys talk to."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.schemas.common import NOT_IN_IDS, ContactId, JsonObject, NoNull, UtcDatetime
from api.schemas.events import JourneyRouting


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _iana_timezone(value: str) -> str:
    # Checked against the IANA list rather than by loading it, so no path-like value ever
    # reaches the zoneinfo file lookup.
    if value not in _timezones():
        raise ValueError(f"'{value}' is not an IANA time zone such as 'Europe/Paris'")
    return value


_EMAIL_PART = rf"[^@{NOT_IN_IDS}]+"
Email = Annotated[
    str,
    StringConstraints(max_length=320, pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$"),
]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9][0-9 ().-]{2,31}$")]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_timezone)]
Locale = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$")
]


# HubSpot's lifecycle stages (its internal values), the vocabulary of the CRM sync.
LifecycleStage = Literal[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]


class Subscriptions(BaseModel):
    """Consent to marketing per channel; transactional messages do not need it."""

    email: bool
    sms: bool
    push: bool


# A channel's consent in an update: true or false; `None` only as "left out".
Channel = Annotated[StrictBool | None, NoNull()]


class SubscriptionsUpdate(BaseModel):
    """The channels to change; channels left out keep their consent."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # Strict: consent is not guessed from "yes" or 1. Documented without `null`, which the
    # validator below refuses.
    email: Channel = None
    sms: Channel = None
    push: Channel = None

    @field_validator("email", "sms", "push", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for channels given: leave a channel out to keep it, null means nothing.
        if value is None:
            raise ValueError("must be true or false; leave the channel out to keep it")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> SubscriptionsUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one channel: email, sms or push")
        return self

    def wanted(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in sorted(self.model_fields_set)}


class ContactBase(BaseModel):
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = Field(default=None, examples=["Europe/Paris"])
    locale: Locale | None = Field(default=None, examples=["fr-FR"])
    attributes: JsonObject = Field(default_factory=dict)


class ContactUpsert(ContactBase):
    """Fields left out keep their stored value; `null` clears one; `attributes` is replaced."""

    model_config = ConfigDict(extra="forbid")

    lifecycle_stage: LifecycleStage | None = Field(
        default=None,
        description="Marketing lifecycle stage, in HubSpot's vocabulary; synced with the CRM.",
    )
    subscriptions: Annotated[SubscriptionsUpdate | None, NoNull()] = Field(
        default=None,
        description="Consent per channel, as `PUT .../subscriptions` sets it: a new contact "
        "simply starts with it; on an existing one each change records an `unsubscribed` or "
        "`subscribed` event.",
    )

    @field_validator("subscriptions", mode="before")
    @classmethod
    def _subscriptions_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must be an object of channels; leave it out to keep consent")
        return value


class ContactPublic(ContactBase):
    contact_id: ContactId
    # Any text: a CRM may send custom stages of its own.
    lifecycle_stage: str | None = None
    subscriptions: Subscriptions
    consent_updated_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ConsentEventPublic(BaseModel):
    id: str
    name: str = Field(examples=["unsubscribed"])
    channel: str
    journeys: list[JourneyRouting] = Field(
        description="What routing did with it, e.g. the journeys it made exit."
    )


class SubscriptionsPublic(BaseModel):
    contact_id: str
    subscriptions: Subscriptions
    consent_updated_at: UtcDatetime | None
    events: list[ConsentEventPublic] = Field(
        description="Events this request recorded (one per changed channel), or earlier ones "
        "of the contact it finished routing; empty when nothing changed."
    )
