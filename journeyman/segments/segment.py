"""A named segment: a predicate with a description."""

from __future__ import annotations

import re
from dataclasses import dataclass

from journeyman.segments.predicates import Predicate

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class UnknownSegmentError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown segment '{name}'")
        self.name = name


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    predicate: Predicate

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"segment names are lower_snake_case, not {self.name!r}")

    @property
    def definition(self) -> str:
        """The predicate, readable."""
        return self.predicate.describe()
