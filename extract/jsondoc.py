"""Notices served as JSON (a portal's detail API, such as 政采云's ``/portal/detail``): the title,
date and HTML body found at the paths a spider names are laid out as a small HTML page, so they
go through the one extraction path (selectors, kind, fields) like any other page.

A spider names JSON paths in its selectors with a ``json:`` prefix and dots between keys:
``{"title": "json:result.data.title", "date": "json:result.data.publishDate",
"body": "json:result.data.content"}``. The bytes stored as evidence stay the JSON as fetched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from html import escape
from typing import Any

from extract.guards import UnusableContent

JSON_PREFIX = "json:"
# Portals in the PRC give epoch milliseconds for a date; their day is the one in UTC+8.
_PORTAL_ZONE = timezone(timedelta(hours=8))
_LAYOUT = {"title": "h1.json-title", "date": "p.json-date", "body": "div.json-body"}


def names_json_paths(selectors: dict[str, str] | None) -> bool:
    return any(str(value).startswith(JSON_PREFIX) for value in (selectors or {}).values())


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path (``result.data.title``); None where the path leads nowhere."""
    for key in path.removeprefix(JSON_PREFIX).split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def date_text(value: Any) -> str:
    """Epoch milliseconds (or seconds) as ``YYYY-MM-DD HH:MM`` in UTC+8; a string as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value if isinstance(value, str) else ""
    seconds = value / 1000 if value > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, UTC).astimezone(_PORTAL_ZONE).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return ""


def _string(value: Any) -> str:
    """A text field's value; a number is its digits, anything else (a list, an object) nothing."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""


def json_page(body: bytes, selectors: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The JSON document as HTML, and the selectors that read it back."""
    try:
        data = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise UnusableContent("not a JSON document (the spider named JSON paths)") from exc
    found = {name: value_at(data, path) for name, path in selectors.items() if str(path).startswith(JSON_PREFIX)}
    title = escape(_string(found.get("title")))
    notice = _string(found.get("body"))   # the notice's own HTML: parsed like any page, never rendered as is
    if not title and not notice:
        raise UnusableContent("JSON document without the named title or body")
    html = (f"<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
            f"<h1 class=\"json-title\">{title}</h1><p class=\"json-date\">{escape(date_text(found.get('date')))}</p>"
            f"<div class=\"json-body\">{notice}</div></body></html>")
    return html, dict(_LAYOUT)
