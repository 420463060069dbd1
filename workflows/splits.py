"""Deterministic A/B/n assignment with a holdout group.

A pure function of contact, journey and step: the same contact lands in the same variant on
every replay, retry and re-entry, and different steps draw independently.
"""

from __future__ import annotations

import hashlib

HOLDOUT = "holdout"
BUCKETS = 10_000


def bucket(contact_id: str, journey: str, step: str) -> int:
    """A uniform draw in [0, BUCKETS) from a stable hash (not Python's salted `hash`)."""
    digest = hashlib.sha256(f"{journey}\x1f{step}\x1f{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign_variant(
    contact_id: str, journey: str, step: str, variants: dict[str, int], holdout: int = 0
) -> str:
    """`holdout` percent go to the holdout group; the rest are shared by the variants' weights."""
    if not variants or any(weight <= 0 for weight in variants.values()):
        raise ValueError(f"split {step!r} needs variants with positive weights, got {variants}")
    if not 0 <= holdout < 100:
        raise ValueError(f"split {step!r}: holdout must be a percentage in [0, 100), got {holdout}")
    if HOLDOUT in variants:
        raise ValueError(f"split {step!r}: {HOLDOUT!r} is reserved for the holdout group")
    draw = bucket(contact_id, journey, step)
    holdout_buckets = holdout * BUCKETS // 100
    if draw < holdout_buckets:
        return HOLDOUT
    # Spread the remaining buckets over the variants in declaration order.
    position = (draw - holdout_buckets) * sum(variants.values())
    span = BUCKETS - holdout_buckets
    cumulative = 0
    for name, weight in variants.items():
        cumulative += weight
        if position < cumulative * span:
            return name
    raise AssertionError("unreachable: the weights cover every bucket")
