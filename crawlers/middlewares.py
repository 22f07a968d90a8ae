"""Downloader middlewares, one job each."""

from __future__ import annotations

import logging
from typing import Any

from parsel import Selector
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response, TextResponse

from extract.blocks import block_reason
from extract.page import visible_text

log = logging.getLogger(__name__)


class BlockPageMiddleware:
    """Portals answer crawlers with HTTP 200 block pages; such a page is never content.

    The request is dropped, the reason counted in the crawl stats (``blocked/<reason>``),
    and the source marked degraded at the end of the run.
    """

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> BlockPageMiddleware:
        return cls(crawler.stats)

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status != 200 or not isinstance(response, TextResponse) or request.meta.get("allow_short"):
            return response
        page = Selector(text=response.text)
        text = visible_text(page)
        reason = block_reason(text, page.css("title::text").get(default=""))
        if reason:
            log.warning("block page at %s: %s", response.url, reason)
            self.stats.inc_value(f"blocked/{reason}")
            self.stats.set_value("source_degraded", reason)
            raise IgnoreRequest(f"block page: {reason}")
        return response
