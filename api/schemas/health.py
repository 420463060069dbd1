"""Health: whether the API can reach what it depends on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Reachability = Literal["ok", "unreachable"]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: Reachability
    temporal: Reachability
