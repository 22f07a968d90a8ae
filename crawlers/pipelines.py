"""Item pipelines: hand each fetched page to the chain (snapshot, extract, index, detect).

The chain sits above the crawlers, so the pipeline does not import it: the Scrapy setting
``LOOPHOLE_INGEST`` names the factory of the ingest step ("module.function", called with the
crawl's Settings), and whoever starts the crawl sets it (loophole.crawl).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from scrapy import signals
from scrapy.utils.misc import load_object

from crawlers.configured import INGEST_KEY, MissingSettings, crawl_settings
from crawlers.items import PageItem
from extract.page import warm_up
from ground.config import Settings
from index.store import CrawlRun, Store


class Ingested(Protocol):
    """What the ingest step says about one page."""

    status: str              # stored | unchanged | rejected
    flagged: list[str]       # ids of the patterns it raised alerts for


class IngestStep(Protocol):
    """The chain a crawl hands its pages to (loophole.pipeline.Monitor)."""

    store: Store

    def check_patterns(self) -> object: ...

    def ingest_item(self, item: Mapping[str, Any]) -> Ingested: ...

    def flush(self) -> None: ...


class IngestPipeline:
    """One ingest step per process and data directory, shared by every spider in the run."""

    def __init__(self, crawler: Any, settings: Settings, open_ingest: Callable[[Settings], IngestStep]) -> None:
        self.crawler = crawler
        self.settings = settings
        self.open_ingest = open_ingest
        self.monitor: IngestStep | None = None
        self.started = datetime.now(UTC)

    @classmethod
    def from_crawler(cls, crawler: Any) -> IngestPipeline:
        name = crawler.settings.get(INGEST_KEY)
        if not name:
            raise MissingSettings(f"no {INGEST_KEY} in the Scrapy settings: the crawl's starter names the ingest step")
        pipeline = cls(crawler, crawl_settings(crawler.settings), load_object(name))
        crawler.signals.connect(pipeline.record_run, signal=signals.spider_closed)
        return pipeline

    def open_spider(self) -> None:
        self.monitor = self.open_ingest(self.settings)
        self.monitor.check_patterns()   # a bad pattern file stops the crawl here, named, before any download
        warm_up()  # before the first download, so a slow first extraction cannot stall it

    def process_item(self, item: PageItem) -> PageItem:
        assert self.monitor is not None
        result = self.monitor.ingest_item(item)
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
