"""Decode page bytes to text: PRC portals often declare one charset and send another.

The order is what the bytes prove first: a BOM, then strict UTF-8 (GBK text is almost never
valid UTF-8, so a page that decodes cleanly is UTF-8 whatever it declares), then the declared
charset with every gb* label widened to GB18030 (a superset of GB2312 and GBK), then
detection, then GB18030 with replacement so that nothing is lost silently.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_GB_LABELS = {"gb2312", "gbk", "gb18030", "x-gbk", "cp936", "gb_2312-80", "euc-cn", "hz-gb-2312"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def normalise_label(label: str | None) -> str | None:
    """Map a declared label to the codec we decode with (gb* -> gb18030)."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _GB_LABELS:
        return "gb18030"
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):  # ValueError: a NUL byte in a hostile label
        return None


def declared_charset(body: bytes, content_type: str | None = None) -> str | None:
    """The charset the server or the page claims, HTTP header first (as browsers do)."""
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match:
            return match.group(1).lower()
    meta = _META_CHARSET.search(body[:4096])
    return meta.group(1).decode("ascii", "ignore").lower() if meta else None


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Return (text, codec actually used)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace"), codec
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = normalise_label(declared_charset(body, content_type))
    if declared and declared != "utf-8":
        try:
            return body.decode(declared), declared
        except UnicodeDecodeError:
            pass
    best = from_bytes(body[:200_000]).best()
    if best is not None and best.encoding:
        codec = normalise_label(best.encoding) or best.encoding
        return body.decode(codec, errors="replace"), codec
    return body.decode("gb18030", errors="replace"), "gb18030"
