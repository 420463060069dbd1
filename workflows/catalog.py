"""The journey catalog: every journey class found in `workflows/`, by name and version.

Adding a journey is adding a module; nothing here or in the runtime changes. Routing reads
these static declarations, never Temporal visibility.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

import workflows
from workflows.contracts import ANY_EVENT
from workflows.runtime import Journey

_NOT_JOURNEYS = {"catalog", "contracts", "content", "runtime", "splits"}


class UnknownJourneyError(LookupError):
    pass


@lru_cache(maxsize=1)
def _load() -> dict[str, dict[int, type[Journey]]]:
    found: dict[str, dict[int, type[Journey]]] = {}
    for module_info in pkgutil.iter_modules(workflows.__path__):
        if module_info.name in _NOT_JOURNEYS or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"workflows.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Journey)
                and value is not Journey
                and value.__module__ == module.__name__
            ):
                versions = found.setdefault(value.name, {})
                if value.version in versions:
                    raise TypeError(f"journey {value.name} v{value.version} is defined twice")
                versions[value.version] = value
    return found


def all_versions() -> list[type[Journey]]:
    """Every journey version, oldest first: the worker registers all of them."""
    return [cls for versions in _load().values() for _, cls in sorted(versions.items())]


def latest() -> list[type[Journey]]:
    """The newest version of each journey, in name order: where new enrollments go."""
    return [versions[max(versions)] for _, versions in sorted(_load().items())]


def get(name: str) -> type[Journey]:
    versions = _load().get(name)
    if not versions:
        raise UnknownJourneyError(name)
    return versions[max(versions)]


def triggered_by(event_name: str) -> list[type[Journey]]:
    return [cls for cls in latest() if event_name in cls.triggers]


def listening_to(event_name: str) -> list[type[Journey]]:
    """Every journey version whose running enrollments want this event by name."""
    return [cls for cls in all_versions() if event_name in cls.listens_to()]


def listening_to_any() -> list[type[Journey]]:
    """Every journey version whose running enrollments want every event (ANY_EVENT)."""
    return [cls for cls in all_versions() if ANY_EVENT in cls.listens_to()]
