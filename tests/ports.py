"""Free loopback ports for the processes tests start, chosen below the kernel's ephemeral range:
a port merely found free (bind to port 0, close) is in that range, and an outgoing connection of
any process may take it before the service binds it ("address already in use", seen in CI)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10000


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_low() -> int:
    """Where the kernel's ephemeral ports (its choice for outgoing connections) begin."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_given: set[int] = set()  # never the same port twice in one run: several are chosen before any binds


def free_port() -> int:
    highest = ephemeral_low() - 1
    if highest - LOWEST < 2000:  # a kernel that leaves no room below its range: the old way
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    for _ in range(1000):
        port = random.randint(LOWEST, highest)
        if port not in _given and bindable(port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {highest}")
