"""Shared spider behaviour: source config, ``-a base_url=``, a sample limit, page items.

Spiders only yield requests and items. Everything after the fetch happens in pipelines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import scrapy
from scrapy.http import Response

from crawlers.items import PageItem
from loophole.config import load_settings
from loophole.sources import Source, load_sources


class SourceSpider(scrapy.Spider):
    """A spider bound to one entry of seeds/sources.yaml (``source_id``, default: its name)."""

    source_id: str = ""
    selectors: dict[str, str] = {}

    def __init__(self, base_url: str | None = None, limit: str | int | None = None,
                 source: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_id = source or self.source_id or self.name
        self.source: Source = load_sources(load_settings().sources_file)[self.source_id]
        self.base_url = (base_url or self.source.base_url).rstrip("/")
        self.allowed_domains = self.source.domains_for(self.base_url)
        self.limit = int(limit) if limit else None
        self.expected = 0
        self.requested = 0

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def start_urls_for_source(self) -> Iterable[str]:
        return (self.url(path) for path in self.source.start)

    async def start(self) -> AsyncIterator[Any]:
        for url in self.start_urls_for_source():
            yield self.list_request(url)

    def list_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, meta=self.render_meta(), dont_filter=False)

    def detail_request(self, url: str, callback: Any = None) -> scrapy.Request | None:
        """A request for a content page, or None once the sample limit is reached."""
        self.expected += 1
        self.crawler.stats.set_value("pages/expected", self.expected)
        if self.limit is not None and self.requested >= self.limit:
            return None
        self.requested += 1
        return scrapy.Request(url, callback=callback or self.parse_page, meta=self.render_meta())

    def render_meta(self) -> dict[str, Any]:
        return {"playwright": True} if self.source.browser else {}

    def page_item(self, response: Response, selectors: dict[str, str] | None = None) -> PageItem:
        self.crawler.stats.inc_value("pages/fetched")
        headers = {k.decode("latin-1").lower(): b", ".join(v).decode("latin-1")
                   for k, v in response.headers.items()}
        return PageItem(url=response.request.url if response.request else response.url, final_url=response.url,
                        body=response.body, status=response.status, headers=headers,
                        fetched_at=datetime.now(UTC),
                        render_mode="browser" if response.meta.get("playwright") else "http",
                        source=self.source_id, selectors=selectors if selectors is not None else self.selectors)

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        yield self.page_item(response)
