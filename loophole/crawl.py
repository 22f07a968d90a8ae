"""Run spiders in-process (one Twisted reactor per process, so one call per process)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings as ScrapySettings
from sqlalchemy import select

from crawlers.configured import INGEST_KEY, scrapy_values
from crawlers.spiders.registry import spider_class
from ground.config import Settings
from ground.sources import Source
from index.store import CrawlRun, Store

log = logging.getLogger(__name__)


@dataclass
class CrawlJob:
    source: Source
    base_url: str | None = None
    limit: int | None = None
    force: bool = False          # crawl even while the source backs off after block pages

    def spider_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"source": self.source.id}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.limit:
            kwargs["limit"] = self.limit
        return kwargs


# The ingest step the crawlers' item pipeline runs (crawlers.pipelines): named, not imported, from below.
INGEST = "loophole.pipeline.shared_monitor"


def project_settings(settings: Settings) -> dict[str, Any]:
    """What a crawl adds to the static crawlers.settings: the values from ``settings`` (this
    Settings, not the environment's) and the ingest step."""
    return {**scrapy_values(settings), INGEST_KEY: INGEST}


def scrapy_settings(settings: Settings, overrides: dict[str, Any] | None = None) -> Any:
    # Loaded by module, not through scrapy.cfg, so the command works from any directory.
    project = ScrapySettings()
    project.setmodule("crawlers.settings", priority="project")
    project.setdict(project_settings(settings), priority="project")
    for key, value in (overrides or {}).items():
        # Above "spider" priority: a run's explicit overrides beat a source's politeness settings.
        project.set(key, value, priority="cmdline")
    return project


def backoff_until(store: Store, source_id: str, now: datetime | None = None) -> datetime | None:
    """When the source's last run stopped on block pages: the time it may run again, if still ahead."""
    with store.session() as session:
        stats = session.scalar(select(CrawlRun.stats).where(CrawlRun.source == source_id)
                               .order_by(CrawlRun.id.desc()).limit(1))
    value = (stats or {}).get("backoff_until")
    if not value:
        return None
    until = datetime.fromisoformat(value)
    return until if until > (now or datetime.now(UTC)) else None


def _runnable(settings: Settings, jobs: list[CrawlJob]) -> tuple[list[CrawlJob], list[dict]]:
    settings.ensure_dirs()
    store = Store(settings.db_url)
    try:
        waiting = {job.source.id: backoff_until(store, job.source.id) for job in jobs if not job.force}
    finally:
        store.close()
    skipped = [{"source": sid, "skipped": f"backing off after block pages until {until.isoformat()}"}
               for sid, until in waiting.items() if until]
    for row in skipped:
        log.warning("%s: %s", row["source"], row["skipped"])
    return [job for job in jobs if not waiting.get(job.source.id)], skipped


def run_crawl(settings: Settings, jobs: list[CrawlJob], overrides: dict[str, Any] | None = None) -> list[dict]:
    """Crawl every job's source concurrently and return each crawler's final stats
    (a source backing off after block pages is skipped, unless its job says ``force``)."""
    jobs, skipped = _runnable(settings, jobs)
    if not jobs:
        return skipped
    process = CrawlerProcess(scrapy_settings(settings, overrides), install_root_handler=True)
    crawlers = []
    for job in jobs:
        crawler = process.create_crawler(spider_class(job.source))
        crawlers.append(crawler)
        process.crawl(crawler, **job.spider_kwargs())
    process.start()
    finished = [{"source": job.source.id, **crawler.stats.get_stats()}
                for job, crawler in zip(jobs, crawlers, strict=True)]
    return finished + skipped
