"""Crawl health tells "ok, nothing new" from "returned nothing it should have", and the digest
names only the sources configured to run that need attention, with the reason and since when.

Before: every incremental run that found nothing new was "empty - returned nothing" under
"N need attention", and every source in sources.yaml, crawled or not, was listed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.digest import collect, render
from alerts.health import SourceHealth, crawl_health
from ground.config import Settings, Subscription, load_settings
from ground.sources import load_sources, scheduled_sources
from index.store import CrawlRun, Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=4)
FIRST = {"pages/expected": 20, "pages/fetched": 20, "ingest/stored": 20, "finish_reason": "finished"}
NOTHING_NEW = {"pages/expected": 20, "pages/known": 20, "lists/stopped_at_known": 1, "finish_reason": "finished",
               "downloader/response_status_count/200": 1}


def _run(store: Store, source: str, days_ago: float, stats: dict[str, Any], health: str = "ok",
         reason: str = "") -> None:
    started = NOW - timedelta(days=days_ago)
    with store.session() as session:
        session.add(CrawlRun(source=source, started_at=started, finished_at=started + timedelta(minutes=5),
                             stats=stats, health=health, reason=reason))


@pytest.fixture
def store(settings: Settings) -> Store:
    settings.ensure_dirs()
    return Store(settings.db_url)


def _health(settings: Settings, store: Store, *names: str) -> dict[str, SourceHealth]:
    sources = load_sources(settings.sources_file)
    with store.session() as session:
        return {h.source: h for h in crawl_health(session, [sources[n] for n in names], NOW, GRACE)}


def test_an_incremental_run_that_finds_nothing_new_is_healthy(settings: Settings, store: Store) -> None:
    _run(store, "ccgp", 1, FIRST)
    _run(store, "ccgp", 0.5, NOTHING_NEW)   # the list, every notice on it stored before: the walk stops
    health = _health(settings, store, "ccgp")["ccgp"]
    assert health.ok and health.reason == "nothing new: 20 listed, all stored before"
    with store.session() as session:
        sources = load_sources(settings.sources_file)
        digest = collect(session, Subscription(name="s"), {}, "email", [sources["ccgp"]], now=NOW)
    text = render(digest)[1]
    assert "Crawl health" not in text and "need attention" not in text


def test_unhealthy_runs_say_why_and_since_when(settings: Settings, store: Store) -> None:
    for source in ("ccgp", "ccgp-local", "jsggzy", "zcy-zhejiang", "hikvision", "dahua"):
        _run(store, source, 5, FIRST)
    # The list came back empty where it named 20 notices before (two runs running).
    _run(store, "ccgp", 2, {"finish_reason": "finished", "downloader/response_status_count/200": 1})
    _run(store, "ccgp", 1, {"finish_reason": "finished", "downloader/response_status_count/200": 1})
    # Expected pages missing: 15 of 20 new notices answered 404.
    _run(store, "ccgp-local", 1, {"pages/expected": 20, "pages/fetched": 5, "ingest/stored": 5, "finish_reason":
                                  "finished", "downloader/response_status_count/404": 15})
    _run(store, "jsggzy", 3, {}, health="degraded", reason="block page: 频繁访问")   # blocked twice running
    _run(store, "jsggzy", 1, {}, health="degraded", reason="block page: 验证码")
    _run(store, "zcy-zhejiang", 1, {"finish_reason": "finished", "downloader/response_status_count/503": 3})
    _run(store, "hikvision", 1, {}, health="failing", reason="exit 1: timed out after 14400s")
    _run(store, "dahua", 1, {**FIRST, "finish_reason": "shutdown"})
    found = _health(settings, store, "ccgp", "ccgp-local", "jsggzy", "zcy-zhejiang", "hikvision", "dahua")
    expected = {"ccgp": ("empty", "lists named no notice, though earlier runs' did", 2),
                "ccgp-local": ("missing", "15 of 20 new notices not fetched (HTTP 404 x15)", 1),
                "jsggzy": ("blocked", "block page: 验证码", 3),
                "zcy-zhejiang": ("failing", "lists answered only errors (HTTP 503 x3)", 1),
                "hikvision": ("failing", "exit 1: timed out after 14400s", 1),
                "dahua": ("failing", "run ended early (shutdown)", 1)}
    for name, (status, reason, days) in expected.items():
        health = found[name]
        assert (health.status, health.reason, health.since) == (status, reason, NOW - timedelta(days=days)), name


def test_a_source_that_never_listed_anything_is_empty_and_a_few_lost_pages_are_not_news(
        settings: Settings, store: Store) -> None:
    _run(store, "ccgp", 1, {"finish_reason": "finished"})
    _run(store, "ccgp-local", 0.3, {"pages/expected": 40, "pages/fetched": 38, "ingest/stored": 38,
                                  "finish_reason": "finished", "downloader/exception_type_count/twisted.TimeoutError": 2})
    found = _health(settings, store, "ccgp", "ccgp-local")
    assert found["ccgp"].status == "empty" and "never named a notice" in found["ccgp"].reason
    assert found["ccgp-local"].ok   # 2 of 40 timed out: the next run fetches them


def test_only_sources_configured_to_run_are_judged(settings: Settings, store: Store, home: Path) -> None:
    _run(store, "demo-vendor", 1, {"downloader/response_status_count/403": 4})  # the demo's own site: never scheduled
    _run(store, "ccgp", 10, FIRST)      # daily at 06:15 and 18:15 Beijing time: overdue for days
    scheduled = {s.id for s in scheduled_sources(settings)}
    assert "demo-vendor" not in scheduled and {"ccgp", "jsggzy"} <= scheduled
    with store.session() as session:
        health = {h.source: h for h in crawl_health(session, scheduled_sources(settings), NOW, GRACE)}
    assert "demo-vendor" not in health
    assert health["ccgp"].status == "overdue" and "no run since 2026-11-10" in health["ccgp"].reason
    # Sources never crawled are listed once their schedule came round after crawling began here.
    assert health["jsggzy"].status == "never" and health["jsggzy"].since is not None
    # Crawling began 10 days ago; a source whose first run is not yet due (grace included) is not listed.
    with store.session() as session:
        soon = crawl_health(session, scheduled_sources(settings), NOW - timedelta(days=10) + timedelta(hours=1), GRACE)
    assert {h.source for h in soon} == {"ccgp"}
    # An installation names its own sources; an unknown id is a configuration error naming it.
    (home / "config.yaml").write_text(yaml.safe_dump({"scheduler": {"sources": ["ccgp", "nope"]}}), encoding="utf-8")
    with pytest.raises(ValueError, match="'nope'"):
        scheduled_sources(load_settings())
