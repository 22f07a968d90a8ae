"""Provincial portals whose lists and notices are rendered by JavaScript from a JSON API.

Both list and detail pages go through Chromium (scrapy-playwright); the spider waits for the
rendered content, so what is stored is what a person would have seen.
"""

from __future__ import annotations

from typing import Any

import scrapy
from scrapy.http import Response
from scrapy_playwright.page import PageMethod

from crawlers.spiders.base import SourceSpider


class JsPortalSpider(SourceSpider):
    name = "js_portal"
    selectors = {"title": "h1.notice-title", "date": ".notice-meta .date", "body": "div.notice-meta, div.notice-body"}

    def list_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, meta=self._wait_for("#notice-list a"))

    def _wait_for(self, selector: str) -> dict[str, Any]:
        return {"playwright": True, "playwright_page_methods": [PageMethod("wait_for_selector", selector)]}

    def parse(self, response: Response, **kwargs: Any) -> Any:
        for href in response.css("#notice-list a::attr(href)").getall():
            request = self.detail_request(response.urljoin(href))
            if request is not None:
                request.meta.update(self._wait_for("body[data-rendered]"))
                yield request
