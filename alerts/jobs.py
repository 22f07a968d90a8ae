"""The digest job of one subscription: group, collect per channel, deliver, and only then record.

Sends are recorded per (alert group, subscription, channel, revision), so each channel and
each subscription gets every group once, a later procurement stage once more, and a channel
that failed gets the same groups on the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.channels import apprise_channel, is_machine, machine_body, send_apprise, write_atom
from alerts.dedup import assign_groups
from alerts.delivery import DeliveryError
from alerts.digest import Digest, build_message, collect, render
from alerts.export import records_for
from alerts.outbox import record_sends, recover, send_with_outbox
from alerts.saved import SearchNews, list_searches, new_results, record_hits
from alerts.views import deliverable, heads_query, load_views, matches
from ground.config import ConfigError, Settings, Subscription
from ground.sources import Source, scheduled_sources
from index.patterns import load_library
from index.store import Store

if TYPE_CHECKING:   # the search engine (and the model's libraries) load only for saved searches
    from index.search import SearchEngine

log = logging.getLogger(__name__)
FEED_SIZE = 100


@dataclass
class ChannelResult:
    channel: str
    target: str = ""
    count: int = 0
    error: str = ""
    search_results: int = 0


@dataclass
class DigestRun:
    subscription: str
    results: list[ChannelResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ChannelResult]:
        return [r for r in self.results if r.error]


def _titles(settings: Settings) -> dict[str, str]:
    return {p.id: p.title for p in load_library(settings.pattern_files).patterns}


def _scheduled(settings: Settings) -> list[Source]:
    try:
        return scheduled_sources(settings)
    except ConfigError as exc:
        log.warning("crawl health without the source list: %s", exc)
        return []


def collect_for(settings: Settings, store: Store, sub: Subscription, channel: str, now: datetime,
                searches: SavedSearches | None = None) -> Digest:
    grace = timedelta(seconds=settings.scheduler.crawl_timeout_seconds)
    news = searches.news(channel) if searches is not None else []
    with store.session() as session:
        return collect(session, sub, _titles(settings), channel, _scheduled(settings), settings.public_base_url,
                       now, grace, news)


class SavedSearches:
    """The subscription's saved searches, run on a search engine loaded only if it has any."""

    def __init__(self, settings: Settings, store: Store, sub: Subscription) -> None:
        self.settings, self.store, self.sub = settings, store, sub
        self._engine: SearchEngine | None = None
        self.any = bool(list_searches(store, subscription=sub.name))

    def news(self, channel: str) -> list[SearchNews]:
        if not self.any:
            return []
        if self._engine is None:
            from index.search import engine_for

            self._engine = engine_for(self.settings, self.store)
        return new_results(self.store, self._engine, self.sub.name, channel, self.settings.public_base_url)


def _email(settings: Settings, store: Store, sub: Subscription, now: datetime, out_dir: Path | None,
           searches: SavedSearches) -> ChannelResult:
    digest = collect_for(settings, store, sub, "email", now, searches)
    recipients = sub.recipients or settings.smtp.recipients
    message = build_message(digest, settings.smtp.sender, recipients, settings.digest.subject_prefix)
    result = ChannelResult("email", count=len(digest.items), search_results=len(digest.hits))
    try:
        # Through the outbox: a crash between sending and recording is finished by recover().
        result.target = send_with_outbox(settings, store, message, sub.name, list(digest.alerts), out_dir,
                                         digest.hits)
    except DeliveryError as exc:
        result.error = str(exc)
    return result


def _apprise(settings: Settings, store: Store, sub: Subscription, url: str, now: datetime,
             searches: SavedSearches) -> ChannelResult:
    channel = apprise_channel(url)
    # Machine channels get alert records only (their JSON schema has no search results).
    digest = collect_for(settings, store, sub, channel, now, None if is_machine(url) else searches)
    result = ChannelResult(channel, target=channel, count=len(digest.items), search_results=len(digest.hits))
    if digest.empty:
        return result  # chat channels hear nothing on a quiet day
    body = machine_body(digest.items, records_for(store, digest.items)) if is_machine(url) else render(digest)[1]
    try:
        send_apprise(url, f"Loophole Watch: {digest.summary}", body, settings.smtp.timeout_seconds)
    except DeliveryError as exc:
        result.error = str(exc)
        return result
    record_sends(store, digest.alerts, sub.name, channel, channel, now)
    record_hits(store, digest.hits, channel, now)
    return result


def _atom(settings: Settings, store: Store, sub: Subscription, now: datetime) -> ChannelResult:
    """The feed is rewritten whole, so a group dismissed or snoozed since the last run leaves it."""
    with store.session() as session:
        views = [v for v in load_views(session, heads_query().where(deliverable(now)), settings.public_base_url)
                 if matches(v, sub)]
    views = sorted(views, key=lambda v: v.updated_at or v.created_at, reverse=True)[:FEED_SIZE]
    path = write_atom(settings.feeds_dir / f"{sub.name}.atom", views, f"Loophole Watch: {sub.name}",
                      f"urn:loophole-watch:{sub.name}")
    return ChannelResult("atom", target=f"file:{path}", count=len(views))


def run_digest(settings: Settings, name: str, now: datetime | None = None, out_dir: Path | None = None) -> DigestRun:
    """Deliver one subscription's digest on each of its channels; returns what each channel did."""
    sub = settings.subscription(name)
    now = now or datetime.now(UTC)
    settings.ensure_dirs()
    store = Store(settings.db_url)
    run = DigestRun(sub.name)
    try:
        recover(settings, store)  # finish a send a crash interrupted before starting a new one
        assign_groups(store)
        searches = SavedSearches(settings, store, sub)
        if sub.recipients or not (sub.apprise or sub.atom) or out_dir is not None:
            run.results.append(_email(settings, store, sub, now, out_dir, searches))
        for url in sub.apprise_urls():
            run.results.append(_apprise(settings, store, sub, url, now, searches))
        if sub.atom:
            run.results.append(_atom(settings, store, sub, now))
    finally:
        store.close()
    for failed in run.failed:
        log.warning("digest %s: %s failed, its alerts stay pending: %s", sub.name, failed.channel, failed.error)
    return run
