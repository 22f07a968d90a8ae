"""Port helpers for loopback servers the tests and the bench start in child processes.

Beside the tests, not in the installed packages: the product itself listens where it is told.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server that must be told its port (not 0) up front."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0,
                  alive: Callable[[], bool] = lambda: True) -> bool:
    """Wait until something accepts connections on the port; False on timeout or once ``alive()``
    is False. The bench's site and ``loophole serve`` run in child processes that take their
    port from us, so the only sign they are ready is that the port answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.1)
    return False
