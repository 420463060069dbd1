"""`JOURNEYMAN_WORKER_METRICS_ADDRESS`: off when empty, else an ip:port to bind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from journeyman.settings import Settings


def test_worker_metrics_are_off_by_default() -> None:
    assert Settings().worker_metrics_address == ""


@pytest.mark.parametrize(
    "address", ["127.0.0.1:9464", "0.0.0.0:9464", "[::1]:9464", " 10.0.0.5:9 "]
)
def test_worker_metrics_address_takes_ip_and_port(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYMAN_WORKER_METRICS_ADDRESS", address)
    assert Settings().worker_metrics_address == address.strip()


@pytest.mark.parametrize(
    "address",
    ["9464", ":9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"],
)
def test_worker_metrics_address_refuses_what_cannot_be_bound(address: str) -> None:
    with pytest.raises(ValidationError, match="want ip:port"):
        Settings(worker_metrics_address=address)
