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
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".htm": "text/html", ".html": "text/html",
                      ".json": "application/json", ".js": "application/javascript", "": "application/octet-stream"}

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the crawl logs what it fetched."""

    def guess_type(self, path: str | Any) -> str:
        # No charset parameter: the page's own <meta> must decide, as on the real portals.
        return super().guess_type(path)


@contextmanager
def serve_directory(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``root`` in a background thread; yields the base URL (``http://127.0.0.1:PORT``)."""
    handler = partial(_Handler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="demo-web", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
