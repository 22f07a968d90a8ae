"""RSS and Atom feeds (a relay seller's announcements): laid out as a small HTML page, so they go
through the one extraction path (title, language, kind) like any other page. Trafilatura alone
finds no HTML tree in a feed and the page would be refused as an empty shell.

The page holds the feed's title as ``<title>`` and ``<h1>``, its date (the newest entry's), then
one ``<article>`` per entry (title, date, summary or content). Its text is read back entry by entry
(``FEED_LAYOUT``): on a page of many articles trafilatura keeps the first entry's heading and drops
the others', and an entry's title is often all it says. The bytes stored as evidence stay the feed
as fetched.
"""

from __future__ import annotations

import codecs
import io
import re
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from html import escape
from typing import Any

import feedparser
from lxml import etree
from lxml_html_clean import Cleaner

from extract.charset import normalise_label
from extract.guards import UnusableContent

FEED_LAYOUT = {"title": "h1.feed-title", "date": "p.feed-date", "body": "article.feed-entry"}
MAX_ENTRIES = 200                # a feed that never ends is cut here, not read to the end
_SNIFF_BYTES = 1024              # the root element of any feed is in its first kilobyte
_FEED_ROOTS = frozenset({"rss", "feed", "rdf"})   # RSS 0.9x/2.0, Atom, RSS 1.0 (rdf:RDF); local names
_FEED_TYPES = re.compile(r"\b(?:rss|atom)\+xml\b", re.IGNORECASE)
_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_READ_DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d$")
# Entry HTML is sanitised by feedparser already; this second pass is what the project relies on:
# nothing a crawler fetched may run (scripts, styles, on* handlers, javascript: links, frames).
_CLEANER = Cleaner(scripts=True, javascript=True, style=True, inline_style=True, comments=True,
                   processing_instructions=True, embedded=True, frames=True, forms=True, meta=True,
                   links=True, page_structure=True, safe_attrs_only=True)


def _head_text(body: bytes) -> str:
    """The first kilobyte as text, enough to read markup: UTF-16 by its BOM, anything else as
    Latin-1 (every ASCII-compatible charset spells the markup in ASCII, and Latin-1 never fails)."""
    head = body[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="ignore")
    return head.removeprefix(codecs.BOM_UTF8).decode("latin-1")


def _prolog_end(rest: str) -> int:
    """Where the declaration, processing instruction, comment or DOCTYPE that ``rest`` starts
    with ends; 0 when it does not end in the text at hand."""
    if rest.startswith("<!--"):
        end = rest.find("-->", 4)
        return end + 3 if end >= 0 else 0
    close = rest.find(">")
    subset = rest.find("[")
    if rest.startswith("<!") and 0 <= subset < close:   # a DOCTYPE with an internal subset
        close = rest.find(">", max(rest.find("]", subset), subset))
    return close + 1 if close >= 0 else 0


def root_element(body: bytes) -> str:
    """The lowercased name of the first element, past the XML declaration, processing
    instructions (xml-stylesheet), comments and a DOCTYPE; "" when the first kilobyte has none.
    A loop, not a regular expression: hostile bytes must not make it backtrack."""
    rest = _head_text(body).lstrip()
    while rest.startswith(("<?", "<!")):
        end = _prolog_end(rest)
        if not end:
            return ""
        rest = rest[end:].lstrip()
    match = _ELEMENT.match(rest)
    return match.group(1).lower() if match else ""


def looks_like_feed(body: bytes, content_type: str | None) -> bool:
    """True for an RSS or Atom feed: its root element says so, or the server calls it a feed and
    the body is not an HTML page (an error page served under the feed's type stays HTML)."""
    root = root_element(body)
    if root.rpartition(":")[2] in _FEED_ROOTS:
        return True
    return bool(content_type and _FEED_TYPES.search(content_type.split(";")[0])) and root != "html"


def _local_date(raw: str) -> datetime | None:
    """An RSS (RFC 822) or Atom (ISO 8601) date in the publisher's own zone: a notice posted at
    07:00 in Beijing is dated that day, not the day before as in UTC."""
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        pass
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def entry_date(entry: Any) -> str:
    """The entry's date as ``YYYY-MM-DD HH:MM`` (the form the date parser reads); feedparser's UTC
    reading of a form neither parser knows; else the date as the feed wrote it."""
    raw = str(entry.get("published") or entry.get("updated") or "").strip()
    local = _local_date(raw) if raw else None
    if local is not None:
        return local.strftime("%Y-%m-%d %H:%M")
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return time.strftime("%Y-%m-%d %H:%M", parsed) if parsed else raw[:64]


def clean_fragment(fragment: str) -> str:
    """Entry HTML without anything that could run; plain text comes back escaped in a span."""
    if not fragment.strip():
        return ""
    try:
        return str(_CLEANER.clean_html(fragment))
    except (etree.ParserError, ValueError):   # nothing but a comment or a declaration: no text
        return ""


def _detail_html(detail: Any) -> str:
    """One summary or content value as safe HTML: plain text escaped, HTML cleaned."""
    value = str(detail.get("value") or "")
    if detail.get("type") == "text/plain":
        return f"<p>{escape(value)}</p>" if value.strip() else ""
    return clean_fragment(value)


def _entry_body(entry: Any) -> str:
    """The entry's content (the full text, RSS content:encoded or Atom content), else its summary."""
    details = list(entry.get("content") or []) or [entry.get("summary_detail") or {"value": entry.get("summary")}]
    parts = dict.fromkeys(_detail_html(detail) for detail in details)   # in order, each once
    return "".join(part for part in parts if part)


def _entry_html(entry: Any) -> str:
    """One entry as an ``<article>``: the title escaped (a feed's title is text, whatever it holds)."""
    return (f"<article class=\"feed-entry\"><h2>{escape(str(entry.get('title') or ''))}</h2>"
            f"<p class=\"entry-date\">{escape(entry_date(entry))}</p>"
            f"<div class=\"entry-body\">{_entry_body(entry)}</div></article>")


def feed_date(parsed: Any, entries: list[Any]) -> str:
    """The feed's date: its newest entry's (what it last announced), else the date the feed gives
    itself, which is often only when it was last rebuilt. Only dates read as ``YYYY-MM-DD`` compare."""
    dates = [date for date in map(entry_date, entries) if _READ_DATE.match(date)]
    return max(dates) if dates else entry_date(parsed.feed)


def _says_something(entry: Any) -> bool:
    """False for the empty entry a feed cut off inside an ``<item>`` leaves behind."""
    return any(entry.get(key) for key in ("title", "summary", "content"))


def _parse(body: bytes) -> tuple[Any, list[Any]]:
    """feedparser's reading of the bytes, and the entries that say something (at most
    ``MAX_ENTRIES``). A stream, never the bytes themselves: given bytes or a string, feedparser
    first tries them as a file name to open (or a URL to fetch)."""
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=True, resolve_relative_uris=False)
    entries = [entry for entry in parsed.entries if _says_something(entry)][:MAX_ENTRIES]
    if entries or parsed.feed.get("title"):
        return parsed, entries   # a bozo feed with entries is still a feed: feedparser reads what it can
    error = parsed.get("bozo_exception")
    raise UnusableContent(f"unreadable feed ({type(error).__name__}: {str(error)[:120]})" if error
                          else "feed with no entries")


def feed_document(body: bytes) -> tuple[str, str]:
    """The feed as HTML (read it back with ``FEED_LAYOUT``), and the charset its bytes were read
    with: the stored feed is shown in it."""
    parsed, entries = _parse(body)
    title = escape(str(parsed.feed.get("title") or ""))
    lang = escape(str(parsed.feed.get("language") or ""))
    lang_attr = f" lang=\"{lang}\"" if lang else ""
    html = (f"<html{lang_attr}><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
            f"<h1 class=\"feed-title\">{title}</h1><p class=\"feed-date\">{escape(feed_date(parsed, entries))}</p>"
            f"{''.join(map(_entry_html, entries))}</body></html>")
    return html, normalise_label(parsed.get("encoding")) or "utf-8"
