"""Which contact fields sync with which CRM properties, and in which direction.

A `FieldMap` names a local field, a remote property and a direction:
- `push`: Journeyman owns it and sends it; a CRM change to it is ignored (`not_pulled`);
- `pull`: the CRM owns it; inbound changes update the contact, nothing is sent;
- `both`: either side may change it; the newer change wins (see `journeyman.crm.inbound`),
  and it is sent only when its latest change was local, so the CRM never hears its own
  change echoed back.

Local fields are `email`, `phone`, `lifecycle_stage`, `score` (the decayed lead score) and
`attributes.<name>`. `email` and `score` are computed or identify the contact, so they can
only be pushed.

`JOURNEYMAN_CRM_FIELDS` adjusts the default mapping below: a comma-separated list of
`local>remote:direction`; each entry replaces the default entry of that local field (or adds
one), and direction `off` drops it. For example
`score>hs_lead_score:push,attributes.plan>plan:both,phone>phone:off`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:  # settings may validate the mapping by importing this module
    from journeyman.settings import Settings

Direction = Literal["push", "pull", "both"]
DIRECTIONS: tuple[Direction, ...] = ("push", "pull", "both")
OFF = "off"

EMAIL = "email"
SCORE = "score"
PHONE = "phone"
LIFECYCLE_STAGE = "lifecycle_stage"
ATTRIBUTE_PREFIX = "attributes."
COLUMNS = frozenset({EMAIL, SCORE, PHONE, LIFECYCLE_STAGE})
# Fields only Journeyman can change.
PUSH_ONLY = frozenset({EMAIL, SCORE})

# HubSpot property names: lower-case letters, digits and underscores; other CRMs are laxer,
# but a name with spaces or punctuation is almost always a typo in the setting.
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")


class MappingError(ValueError):
    """The field mapping setting cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class FieldMap:
    local: str
    remote: str
    direction: Direction

    @property
    def pushes(self) -> bool:
        return self.direction in ("push", "both")

    @property
    def pulls(self) -> bool:
        return self.direction in ("pull", "both")

    @property
    def attribute(self) -> str | None:
        """The attribute name for `attributes.<name>` fields, else None."""
        if self.local.startswith(ATTRIBUTE_PREFIX):
            return self.local[len(ATTRIBUTE_PREFIX) :]
        return None


DEFAULT_FIELDS: tuple[FieldMap, ...] = (
    # HubSpot upserts contacts by email: it is also the identity of the contact there.
    FieldMap(EMAIL, "email", "push"),
    # A custom contact property (number) to create in HubSpot.
    FieldMap(SCORE, "journeyman_score", "push"),
    FieldMap(LIFECYCLE_STAGE, "lifecyclestage", "both"),
    FieldMap(PHONE, "phone", "both"),
    FieldMap("attributes.first_name", "firstname", "both"),
    FieldMap("attributes.last_name", "lastname", "both"),
    FieldMap("attributes.company", "company", "both"),
    # Who owns the contact in sales: the CRM decides; sales notifications assign to them.
    FieldMap("attributes.hubspot_owner_id", "hubspot_owner_id", "pull"),
)


@dataclass(frozen=True)
class FieldMapping:
    fields: tuple[FieldMap, ...]

    @classmethod
    def default(cls) -> FieldMapping:
        return cls(DEFAULT_FIELDS)

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldMapping:
        """The default mapping adjusted by `JOURNEYMAN_CRM_FIELDS`; raises `MappingError`."""
        return cls.parse(settings.crm_fields)

    @classmethod
    def parse(cls, overrides: str, base: Sequence[FieldMap] = DEFAULT_FIELDS) -> FieldMapping:
        by_local = {entry.local: entry for entry in base}
        for raw in overrides.split(","):
            text = raw.strip()
            if not text:
                continue
            local, remote, direction = _parse_entry(text)
            if direction == OFF:
                by_local.pop(local, None)
            else:
                by_local[local] = FieldMap(local, remote, cast(Direction, direction))
        mapping = cls(tuple(by_local.values()))
        mapping._check_remote_names_unique()
        return mapping

    def _check_remote_names_unique(self) -> None:
        seen: dict[str, str] = {}
        for entry in self.fields:
            other = seen.setdefault(entry.remote.lower(), entry.local)
            if other != entry.local:
                raise MappingError(
                    f"JOURNEYMAN_CRM_FIELDS: CRM property {entry.remote!r} is mapped twice "
                    f"({other} and {entry.local})"
                )

    @property
    def pushed(self) -> tuple[FieldMap, ...]:
        return tuple(entry for entry in self.fields if entry.pushes)

    def by_remote(self, remote: str) -> FieldMap | None:
        wanted = remote.lower()  # HubSpot's internal names are case-insensitive
        return next((entry for entry in self.fields if entry.remote.lower() == wanted), None)

    def pushed_locals(self, names: Iterable[str]) -> list[str]:
        """The names among `names` that this mapping sends to the CRM."""
        pushed = {entry.local for entry in self.pushed}
        return sorted({name for name in names if name in pushed})


def crm_mapping(settings: Settings) -> FieldMapping:
    """The mapping of these settings, parsed once per distinct setting (requests call this)."""
    return _parsed(settings.crm_fields)


@lru_cache(maxsize=8)
def _parsed(overrides: str) -> FieldMapping:
    return FieldMapping.parse(overrides)


def _parse_entry(text: str) -> tuple[str, str, str]:
    how = "expected local>remote:direction (direction push, pull, both or off)"
    local, arrow, rest = text.partition(">")
    remote, colon, direction = rest.rpartition(":")
    local, remote, direction = local.strip(), remote.strip(), direction.strip().lower()
    if not arrow or not colon or not local or not remote:
        raise MappingError(f"JOURNEYMAN_CRM_FIELDS entry {text!r}: {how}")
    if direction not in (*DIRECTIONS, OFF):
        raise MappingError(
            f"JOURNEYMAN_CRM_FIELDS entry {text!r}: unknown direction {direction!r}; {how}"
        )
    if local not in COLUMNS:
        attribute = local[len(ATTRIBUTE_PREFIX) :] if local.startswith(ATTRIBUTE_PREFIX) else None
        if attribute is None or not _ATTRIBUTE.match(attribute):
            raise MappingError(
                f"JOURNEYMAN_CRM_FIELDS entry {text!r}: unknown local field {local!r}; use "
                "email, phone, lifecycle_stage, score or attributes.<name>"
            )
    if not _REMOTE.match(remote):
        raise MappingError(
            f"JOURNEYMAN_CRM_FIELDS entry {text!r}: {remote!r} is not a CRM property name"
        )
    if local in PUSH_ONLY and direction not in ("push", OFF):
        raise MappingError(
            f"JOURNEYMAN_CRM_FIELDS entry {text!r}: {local} can only be pushed "
            "(Journeyman computes it or identifies the contact by it)"
        )
    return local, remote, direction
