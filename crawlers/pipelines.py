"""Item pipelines: hand each fetched page to the chain (snapshot, extract, index, detect)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scrapy import signals

from crawlers.items import PageItem
from extract.page import warm_up
from index.store import CrawlRun
from loophole.config import Settings, load_settings
from loophole.pipeline import Monitor, RawPage, shared_monitor


class IngestPipeline:
    """One Monitor per process and data directory, shared by every spider in the run."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.monitor: Monitor | None = None
        self.started = datetime.now(UTC)

    @classmethod
    def from_crawler(cls, crawler: Any) -> IngestPipeline:
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.record_run, signal=signals.spider_closed)
        return pipeline

    def _settings(self) -> Settings:
        configured = self.crawler.settings.get("LOOPHOLE_SETTINGS")
        return configured if isinstance(configured, Settings) else load_settings()

    def open_spider(self) -> None:
        self.monitor = shared_monitor(self._settings())
        self.monitor.check_patterns()   # a bad pattern file stops the crawl here, named, before any download
        warm_up()  # before the first download, so a slow first extraction cannot stall it

    def process_item(self, item: PageItem) -> PageItem:
        assert self.monitor is not None
        raw = RawPage(url=item["url"], body=item["body"], final_url=item.get("final_url", item["url"]),
                      status=item.get("status", 200), headers=item.get("headers", {}),
                      fetched_at=item.get("fetched_at", datetime.now(UTC)),
                      render_mode=item.get("render_mode", "http"), source=item.get("source", ""),
                      selectors=item.get("selectors") or {}, fields=item.get("fields") or {},
                      attachments=item.get("attachments") or [], screenshot=item.get("screenshot"))
        result = self.monitor.ingest(raw)
        stats = self.crawler.stats
        stats.inc_value(f"ingest/{result.status}")
        for pattern_id in result.flagged:
            stats.inc_value(f"flagged/{pattern_id}")
        return item

    def close_spider(self) -> None:
        assert self.monitor is not None
        self.monitor.flush()  # every item is stored before the run is recorded as finished

    def record_run(self, spider: Any, reason: str) -> None:
        """The crawl-run record, written on ``spider_closed``, when Scrapy knows why the run ended.

        Its ``finish_reason`` tells the next run of the source whether this one walked its lists to
        the end (``crawlers.spiders.base.last_crawl_finished``); a killed run writes none.
        """
        if self.monitor is None:
            return  # never opened: nothing was stored
        stats = {k: v for k, v in self.crawler.stats.get_stats().items()
                 if isinstance(v, int | float | str) and not k.startswith(("memusage", "log_count"))}
        stats["finish_reason"] = reason
        degraded = stats.get("source_degraded")
        with self.monitor.store.session() as session:
            session.add(CrawlRun(source=getattr(spider, "source_id", spider.name), started_at=self.started,
                                 finished_at=datetime.now(UTC), stats=stats,
                                 health="degraded" if degraded else "ok", reason=str(degraded or "")))
