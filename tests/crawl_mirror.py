"""A loopback mirror for crawl tests: routes by path (and query), files by path, request log.

Unlike the static demo server it answers by query string (``/oss/download?uuid=X``,
``/bxsearch?kw=...&page_index=2``), POST bodies (JSON list APIs) and chosen statuses and
headers (429 with Retry-After), and it records every request so a test can assert what the
crawler asked for, and that a second run asked for nothing new.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loophole.webserver import LoopbackHTTPServer, serving

ROOT = Path(__file__).resolve().parent.parent

Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[dict[str, list[str]], bytes], Reply]


@dataclass
class Mirror:
    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)        # path -> body (text/html unless set)
    types: dict[str, str] = field(default_factory=dict)          # path -> content type
    routes: dict[str, Route] = field(default_factory=dict)       # path -> handler(query, body)
    log: list[tuple[str, str]] = field(default_factory=list)     # (method, path?query)

    def reply(self, method: str, target: str, body: bytes) -> Reply:
        self.log.append((method, target))
        parts = urlsplit(target)
        if parts.path in self.routes:
            return self.routes[parts.path](parse_qs(parts.query), body)
        if parts.path in self.files:
            return 200, {"Content-Type": self.types.get(parts.path, "text/html")}, self.files[parts.path]
        return 404, {"Content-Type": "text/html"}, b"<html><body>not found</body></html>"

    def requested(self, prefix: str = "/") -> list[str]:
        return [target for _, target in self.log if target.startswith(prefix)]


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, body = mirror.reply(method, self.path, self.rfile.read(length) if length else b"")
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def serve_mirror(mirror: Mirror, host: str = "127.0.0.1") -> Iterator[Mirror]:
    """Serve on ``host`` (any 127.x address is loopback: several "sites" on one machine)."""
    server = LoopbackHTTPServer((host, 0), _handler(mirror))
    with serving(server, "crawl-mirror"):
        mirror.base_url = f"http://{host}:{server.server_address[1]}"
        yield mirror


def fast_config(tmp: Path, **crawl: Any) -> Path:
    """A config file for loopback crawls: no politeness delay (the mirror is ours)."""
    path = tmp / "config.yaml"
    path.write_text(json.dumps({"crawl": {"download_delay": 0, **crawl}}), encoding="utf-8")
    return path


def loophole(args: list[str], home: Path, config: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (Twisted's reactor runs once per process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPHOLE_")}
    env.update({"LOOPHOLE_HOME": str(home), "LOOPHOLE_CONFIG": str(config), "PYTHONPATH": str(ROOT)})
    return subprocess.run([sys.executable, "-m", "loophole.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)


def documents(home: Path, config: Path, source: str) -> list[dict]:
    completed = loophole(["docs", "--source", source, "--json"], home, config)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer is ``text`` (ASCII), built by hand with a valid xref."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
