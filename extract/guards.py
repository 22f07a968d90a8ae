"""Checks that run before parsing: a fetched body is hostile until shown otherwise."""

from __future__ import annotations

_BINARY_MAGIC = (
    b"%PDF", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"\x1f\x8b", b"Rar!",
    b"7z\xbc\xaf", b"\xd0\xcf\x11\xe0", b"MZ", b"\x7fELF",
)


class UnusableContent(ValueError):
    """A body that must not be stored as a document (binary, empty, or a block page)."""


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def looks_binary(body: bytes) -> bool:
    """True for bytes no HTML page starts with, or with many NUL/control bytes.

    A UTF-16 page (with its BOM) is half NUL bytes and still text; charset.py decodes it.
    """
    head = body[:2048].lstrip()
    if head.startswith(_BINARY_MAGIC):
        return True
    if body.startswith(_UTF16_BOMS):
        return False
    sample = body[:8192]
    if not sample:
        return False
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    return controls / len(sample) > 0.05
