"""Malformed PDFs and archives served where a page was expected.

Attachment extraction does not exist yet, so these exercise the guard that runs before any
parsing (extract/guards.py): each body is refused as binary with a clear reason, quickly, and
nothing tries to parse, inflate or unpack it.
"""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from extract import UnusableContent, extract_page, looks_binary


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../etc/cron.d/evil", b"\0" * (16 * 1024 * 1024))
    return buffer.getvalue()


BODIES = {
    "truncated-pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nstream\n\x00\x01",
    "pdf-after-whitespace": b"\r\n  %PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 100,
    "corrupt-zip": b"PK\x03\x04" + b"\xff" * 200,
    "zip-bomb-with-traversal-name": _zip_bomb(),
    "gzip-as-html": b"\x1f\x8b\x08\x00" + b"\x00" * 64,
    "rar": b"Rar!\x1a\x07\x00" + bytes(range(256)),
    "ole-doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512,
    "nul-heavy": b"<html>" + b"\x00\x01\x02" * 2000,
}


@pytest.mark.parametrize("name", list(BODIES))
def test_binary_attachment_bodies_are_refused_before_parsing(name: str) -> None:
    body = BODIES[name]
    assert looks_binary(body)
    started = time.perf_counter()
    with pytest.raises(UnusableContent, match="binary content served as a page"):
        extract_page(body, f"http://127.0.0.1/{name}", "text/html; charset=utf-8")
    assert time.perf_counter() - started < 0.5
