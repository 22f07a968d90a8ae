"""Run by tests/test_hostile_crawl.py in a subprocess (one Twisted reactor per process).

``python -m tests.hostile_crawl BASE_URL OUT_DIR``: crawls the hostile web with a spider that
follows every link it is allowed to, for two sources (one that may reach private addresses,
one that may not), with the project's real Scrapy settings and middlewares. Each fetched page
goes through the real extraction (``extract_page``); the result is recorded instead of being
embedded, so the run needs no model and takes seconds (ingest of hostile bodies is tested
in-process in test_hostile_ingest.py).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response, TextResponse

from crawlers.items import PageItem
from crawlers.spiders.base import SourceSpider
from extract import UnusableContent, extract_page
from extract.page import warm_up
from ground.config import load_settings
from loophole.crawl import scrapy_settings

log = logging.getLogger("hostile_crawl")
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")


class FollowAllSpider(SourceSpider):
    """The most trap-prone crawler there is: every page is kept and every link followed."""

    name = "follow_all"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            return
        if response.url.rstrip("/") != self.base_url:
            yield self.page_item(response)
        for href in response.css("a::attr(href)").getall():
            yield scrapy.Request(response.urljoin(href), callback=self.parse)


class ExtractRecorder:
    """Extract each page as the ingest chain would, and record the outcome as one JSON line."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ExtractRecorder:
        return cls(crawler)

    def open_spider(self) -> None:
        warm_up()

    def process_item(self, item: PageItem) -> PageItem:
        row: dict[str, Any] = {"source": item["source"], "url": item["url"]}
        try:
            page = extract_page(item["body"], item["final_url"], item["headers"].get("content-type"))
            row.update(status="stored", title=page.title, text=page.text, encoding=page.encoding)
        except UnusableContent as exc:
            log.warning("not stored: %s (%s)", item["url"], exc)
            row.update(status="rejected", reason=str(exc))
        with open(OUT / "pages.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return item


def main(base_url: str) -> None:
    process = CrawlerProcess(scrapy_settings(load_settings(), {
        "ITEM_PIPELINES": {"tests.hostile_crawl.ExtractRecorder": 300}, "LOG_INSTALL_ROOT_HANDLER": True}))
    crawlers = {}
    for source in ("hostile", "intranet"):
        crawler = process.create_crawler(FollowAllSpider)
        crawlers[source] = crawler
        process.crawl(crawler, source=source, base_url=base_url)
    process.start()
    stats = {source: {k: v for k, v in c.stats.get_stats().items() if isinstance(v, int | float | str)}
             for source, c in crawlers.items()}
    (OUT / "stats.json").write_text(json.dumps(stats, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
