"""Free TCP ports for servers that must be told their port before they start.

Binding port 0 and closing the socket hands out a port from the kernel's ephemeral range, the
same range the kernel draws from for every outgoing connection and that the Temporal dev server
draws from for its internal services. Between our probe and the server's own bind, any of those
can take the port (it happened in CI: the API lost its port to the dev server it had just
started). Ports below the ephemeral range are handed out only on request, so picking there
leaves only a deliberate bind on the same port to race with.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default range; it also starts below the IANA range (49152+) that macOS uses.
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)
# Stay clear of the well-known and commonly configured ports (PostgreSQL, Temporal, 8000...).
LOWEST_PORT = 10000
ATTEMPTS = 200

# Not the module's `random`: tests seed that, and two processes would then pick alike.
_choice = random.SystemRandom()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers we start set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def ephemeral_range(source: Path | None = None) -> tuple[int, int]:
    try:
        text = (source or EPHEMERAL_RANGE_FILE).read_text()
        low, high = (int(part) for part in text.split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE
    return low, high


def free_ports(count: int) -> list[int]:
    """`count` distinct ports, free right now, outside the ephemeral range when it allows."""
    low, _ = ephemeral_range()
    chosen: list[int] = []
    if low - LOWEST_PORT >= 1000:
        for _ in range(ATTEMPTS):
            if len(chosen) == count:
                return chosen
            port = _choice.randrange(LOWEST_PORT, low)
            if port not in chosen and port_is_free(port):
                chosen.append(port)
    # A range configured to start near the bottom leaves nothing to pick from: let the kernel
    # choose, as before.
    while len(chosen) < count:
        port = _kernel_port()
        if port not in chosen:
            chosen.append(port)
    return chosen


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def _kernel_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
