"""Fixed ports for started servers come from outside the kernel's ephemeral range.

CI once lost the API's port to the Temporal dev server started just before it, which takes
ephemeral ports for its internal services; outgoing connections take them too.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from journeyman import ports
from journeyman.ports import LOWEST_PORT, ephemeral_range, free_ports, port_is_free


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    picked = free_ports(8)
    assert len(set(picked)) == 8
    assert all(LOWEST_PORT <= port < low for port in picked), (picked, low)
    assert all(port_is_free(port) for port in picked)


def test_a_port_in_use_is_not_free() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert not port_is_free(held.getsockname()[1])


def test_the_range_is_read_from_the_kernel_setting(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_range(setting) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == ports.DEFAULT_EPHEMERAL_RANGE
    setting.write_text("garbage")
    assert ephemeral_range(setting) == ports.DEFAULT_EPHEMERAL_RANGE


def test_a_range_starting_at_the_bottom_falls_back_to_kernel_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text(f"{LOWEST_PORT + 10} 65000")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", setting)
    picked = free_ports(3)
    assert len(set(picked)) == 3
    assert all(port_is_free(port) for port in picked)
