"""Helpers for the metrics tests: the key, and reading Prometheus text with prometheus-client's
own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

API_KEY = "metrics-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample `name` whose labels include `labels`; 0 when there is none
    (Prometheus shows a counter that never moved as absent)."""
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    assert len(found) <= 1, f"{len(found)} samples of {name} match {labels}"
    return found[0] if found else 0.0


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}
