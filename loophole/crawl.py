"""Run spiders in-process (one Twisted reactor per process, so one call per process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings as ScrapySettings

from crawlers.frontier import frontier_settings
from loophole.config import Settings
from loophole.sources import Source


@dataclass
class CrawlJob:
    source: Source
    base_url: str | None = None
    limit: int | None = None

    def spider_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"source": self.source.id}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        if self.limit:
            kwargs["limit"] = self.limit
        return kwargs


def scrapy_settings(settings: Settings, overrides: dict[str, Any] | None = None) -> Any:
    # Loaded by module, not through scrapy.cfg, so the command works from any directory.
    project = ScrapySettings()
    project.setmodule("crawlers.settings", priority="project")
    project.set("LOOPHOLE_SETTINGS", settings)
    project.setdict(frontier_settings(settings), priority="project")  # this Settings, not the environment's
    for key, value in (overrides or {}).items():
        project.set(key, value)
    return project


def run_crawl(settings: Settings, jobs: list[CrawlJob], overrides: dict[str, Any] | None = None) -> list[dict]:
    """Crawl every job's source concurrently and return each crawler's final stats."""
    process = CrawlerProcess(scrapy_settings(settings, overrides), install_root_handler=True)
    crawlers = []
    for job in jobs:
        crawler = process.create_crawler(job.source.spider)
        crawlers.append(crawler)
        process.crawl(crawler, **job.spider_kwargs())
    process.start()
    return [{"source": job.source.id, **crawler.stats.get_stats()} for job, crawler in zip(jobs, crawlers, strict=True)]
