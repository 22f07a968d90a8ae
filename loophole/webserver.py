"""A static web server on loopback for the demo's mock web and for tests.

Files are served as bytes, exactly as written (a GBK page stays GBK); the query string is
ignored so that ``detail.html?id=3`` serves ``detail.html`` and its script reads the id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseServer
from typing import Any, TypeVar


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".htm": "text/html", ".html": "text/html",
                      ".json": "application/json", ".js": "application/javascript", "": "application/octet-stream"}

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the crawl logs what it fetched."""

    def guess_type(self, path: str | Any) -> str:
        # No charset parameter: the page's own <meta> must decide, as on the real portals.
        return super().guess_type(path)


ServerT = TypeVar("ServerT", bound=BaseServer)


@contextmanager
def serving(server: ServerT, name: str = "loopback-web") -> Iterator[ServerT]:
    """Run ``server`` in a background thread for the block, then stop it and free its port.
    Shared by the demo web and every loopback server the tests start."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """http.server's threading server with a listen backlog a crawler cannot overflow.

    A crawl opens up to 16 connections to one host at once; http.server listens with a backlog
    of 5, and when the accept queue is full under load the kernel may drop or reset a connection
    (the likely cause of a rare download error in loopback crawls). Threads are daemons so a
    stuck client never holds the process open.
    """

    request_queue_size = 128
    daemon_threads = True


@contextmanager
def serve_directory(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``root`` in a background thread; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = LoopbackHTTPServer((host, port), partial(_Handler, directory=str(root)))
    with serving(server, "demo-web"):
        yield f"http://{host}:{server.server_address[1]}"
