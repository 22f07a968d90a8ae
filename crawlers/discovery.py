"""The discovery source's memory: the seller hosts its web searches found, kept in the store
(``discovered_hosts``) so that a host is queued once, crawled within a daily page cap, crawled
again on a schedule once one of its pages has raised an alert, and left alone for a while after
it answered with a block page.

A host's key is its name without ``www.`` (with the port when one is given), so the results of
many searches collapse onto one row per site; a Telegram channel's public preview
(``t.me/s/<channel>``) is its own "host", since t.me hosts every broker channel there is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from sqlalchemy import func, select

from ground.config import DiscoverySettings
from index.store import Alert, DiscoveredHost, Document, Store

_TELEGRAM = re.compile(r"^/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,31})(?:/\d+)?/?$")
TELEGRAM_HOSTS = {"t.me", "telegram.me"}


def host_key(url: str) -> str | None:
    """``shop.example.com`` for ``https://www.Shop.Example.com/item/1``; ``t.me/channel`` for a
    channel's posts; None for what is no web page (mailto:, a bare path)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".").removeprefix("www.")
    if host in TELEGRAM_HOSTS:
        channel = _TELEGRAM.match(parts.path)
        return f"t.me/{channel.group(1).lower()}" if channel else None
    try:
        port = parts.port
    except ValueError:
        return None
    return f"{host}:{port}" if port else host


def page_url(url: str, key: str) -> str:
    """The URL to fetch for a result: a Telegram channel's server-rendered public preview."""
    if key.startswith("t.me/"):
        return f"https://t.me/s/{key.removeprefix('t.me/')}"
    return url.split("#")[0]


def searxng_query(term: str, page: int, settings: DiscoverySettings) -> str:
    """``/search?q=...&format=json&pageno=N`` with the configured language, time range and engines
    (SearXNG's search API: GET ``/search``; ``format=json`` must be enabled on the instance)."""
    params = {"q": term, "format": "json", "pageno": page, "language": settings.language,
              "time_range": settings.time_range, "engines": ",".join(settings.engines)}
    return "/search?" + urlencode({key: value for key, value in params.items() if value not in ("", None)})


@dataclass
class SearchAnswer:
    """What a SearXNG JSON answer says: ``results[].url`` and ``unresponsive_engines`` as
    "engine: reason" (an engine that hit a captcha or timed out)."""

    urls: list[str] = field(default_factory=list)
    unresponsive: list[str] = field(default_factory=list)


def read_searxng(text: str) -> SearchAnswer:
    """The answer's result URLs and silent engines; raises ValueError when it is no SearXNG answer."""
    try:
        answer = json.loads(text)
        results = answer.get("results") or []
        engines = answer.get("unresponsive_engines") or []
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"not a SearXNG JSON answer: {exc}") from exc
    if not isinstance(results, list) or not isinstance(engines, list):
        raise ValueError("not a SearXNG JSON answer: results or unresponsive_engines is not a list")
    urls = [str(r["url"]) for r in results if isinstance(r, dict) and isinstance(r.get("url"), str)]
    silent = [": ".join(map(str, engine)) for engine in engines if isinstance(engine, list)]
    return SearchAnswer(urls, silent)


@dataclass(frozen=True)
class Visit:
    """A host to crawl in this run: its pages, how many more it may be sent today, and whether
    it is a re-crawl (pages fetched again even though they are stored)."""

    host: str
    urls: list[str]
    allowance: int
    recrawl: bool


class HostQueue:
    """The discovered hosts of one source. Every method is one short transaction."""

    def __init__(self, store: Store, source_id: str, settings: DiscoverySettings, backoff_minutes: int) -> None:
        self.store = store
        self.source_id = source_id
        self.settings = settings
        self.backoff = timedelta(minutes=backoff_minutes)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def add_results(self, urls: Iterable[str], query: str) -> list[str]:
        """Record a search's result URLs by host; returns the hosts seen for the first time."""
        by_host: dict[str, list[str]] = {}
        for url in urls:
            key = host_key(url)
            if key is not None and not self._ignored(key):
                by_host.setdefault(key, []).append(page_url(url, key))
        new = []
        with self.store.session() as session:
            for key, found in by_host.items():
                row = session.get(DiscoveredHost, key)
                if row is None:
                    row = DiscoveredHost(host=key, source=self.source_id, query=query, urls=[], status="queued",
                                         first_seen=self.now(), next_crawl_at=self.now())
                    session.add(row)
                    new.append(key)
                row.urls = list(dict.fromkeys([*row.urls, *found]))[: self.settings.urls_per_host]
        return new

    def _ignored(self, key: str) -> bool:
        host = key.split(":")[0]
        return any(host == name or host.endswith("." + name) for name in self.settings.ignore_hosts)

    def due(self, hosts: Iterable[str] | None = None) -> list[Visit]:
        """Hosts to crawl now (or those of ``hosts`` that are): queued ones and flagged ones whose
        re-crawl time has come, not while they back off, each with what is left of today's cap."""
        now = self.now()
        query = select(DiscoveredHost).where(DiscoveredHost.source == self.source_id,
                                             DiscoveredHost.next_crawl_at <= now)
        if hosts is not None:
            query = query.where(DiscoveredHost.host.in_(list(hosts)))
        with self.store.session() as session:
            rows = [row for row in session.scalars(query.order_by(DiscoveredHost.next_crawl_at))
                    if _before(row.backoff_until, now)]
            return [Visit(row.host, list(row.urls), self._allowance(row, now), row.status == "flagged")
                    for row in rows]

    def _allowance(self, row: DiscoveredHost, now: datetime) -> int:
        used = row.pages_today if row.pages_day == now.date().isoformat() else 0
        return max(0, self.settings.max_pages_per_host_per_day - used)

    def fetched(self, host: str) -> None:
        """One more page fetched from the host today (the daily cap counts them)."""
        today = self.now().date().isoformat()
        with self.store.session() as session:
            row = session.get(DiscoveredHost, host)
            if row is not None:
                row.pages_today = (row.pages_today if row.pages_day == today else 0) + 1
                row.pages_day = today

    def crawled(self, host: str) -> None:
        """The host's visit is over: a flagged host comes back after ``recrawl_hours``, others only
        when a search finds new pages on them (they stay known, so they are not queued again)."""
        now = self.now()
        with self.store.session() as session:
            row = session.get(DiscoveredHost, host)
            if row is not None:
                row.last_crawled_at = now
                flagged = row.status == "flagged"
                row.status = "flagged" if flagged else "crawled"
                row.next_crawl_at = now + timedelta(hours=self.settings.recrawl_hours) if flagged else None

    def back_off(self, host: str, reason: str) -> datetime:
        """A block page from the host: leave it alone for ``crawl.block_backoff_minutes``."""
        until = self.now() + self.backoff
        with self.store.session() as session:
            row = session.get(DiscoveredHost, host)
            if row is not None:
                row.backoff_until, row.block_reason = until, reason
        return until

    def refresh_flags(self) -> list[str]:
        """Hosts whose stored pages have raised alerts (the alerts table, after ingest) are put on
        the re-crawl schedule; returns those flagged just now."""
        counts = self._alerts_by_host()
        flagged = []
        with self.store.session() as session:
            for row in session.scalars(select(DiscoveredHost).where(DiscoveredHost.source == self.source_id,
                                                                    DiscoveredHost.host.in_(list(counts)))):
                row.alerts = counts[row.host]
                if row.status != "flagged":
                    row.status = "flagged"
                    row.next_crawl_at = (row.last_crawled_at or self.now()) + timedelta(
                        hours=self.settings.recrawl_hours)
                    flagged.append(row.host)
        return flagged

    def _alerts_by_host(self) -> dict[str, int]:
        query = (select(Document.url, func.count(Alert.id)).join(Alert, Alert.doc_id == Document.id)
                 .where(Document.source == self.source_id).group_by(Document.url))
        counts: dict[str, int] = {}
        with self.store.session() as session:
            for url, count in session.execute(query):
                key = host_key(url)
                if key is not None:
                    counts[key] = counts.get(key, 0) + count
        return counts


def _before(until: datetime | None, now: datetime) -> bool:
    """No back-off, or one that is over (SQLite gives naive UTC datetimes back)."""
    if until is None:
        return True
    return (until if until.tzinfo else until.replace(tzinfo=UTC)) <= now
