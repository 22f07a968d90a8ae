"""Benchmark and load-test machinery: ``make bench`` (``python -m tests.bench``) and the web
search load test (``python -m tests.bench.loadtest``, also used by tests/test_web_load.py).

It lives beside the tests, not in the installed packages: nothing the product runs needs it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable


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
