"""Provincial portals whose lists and notices are rendered by JavaScript from a JSON API.

Both list and detail pages go through Chromium (scrapy-playwright); the spider waits for the
rendered content, so what is stored is what a person would have seen, with a full-page
screenshot as evidence of it.

Options: ``list_links`` (CSS for notice links, default ``#notice-list a``), ``rendered``
(CSS that exists once a notice is rendered, default ``body[data-rendered]``).
"""

from __future__ import annotations

from typing import Any

import scrapy
from scrapy.http import Response
from scrapy_playwright.page import PageMethod

from crawlers.spiders.base import SourceSpider, SpiderOptions


class JsPortalOptions(SpiderOptions):
    list_links: str = "#notice-list a"        # CSS for notice links
    rendered: str = "body[data-rendered]"     # CSS that exists once a notice is rendered


class JsPortalSpider(SourceSpider):
    name = "js_portal"
    Options = JsPortalOptions
    options: JsPortalOptions
    selectors = {"title": "h1.notice-title", "date": ".notice-meta .date", "body": "div.notice-meta, div.notice-body"}

    @property
    def links_css(self) -> str:
        return self.options.list_links

    def list_request(self, url: str, **meta: Any) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, meta={**self._wait_for(self.links_css), **meta})

    def _wait_for(self, selector: str, screenshot: bool = False) -> dict[str, Any]:
        methods = [PageMethod("wait_for_selector", selector)]
        if screenshot:
            methods.append(PageMethod("screenshot", full_page=True, type="png"))
        return {"playwright": True, "playwright_page_methods": methods}

    def parse(self, response: Response, **kwargs: Any) -> Any:
        rendered = self.options.rendered
        urls = [response.urljoin(href) for href in response.css(f"{self.links_css}::attr(href)").getall()]
        yield from self.detail_requests(urls, **self._wait_for(rendered, screenshot=True))

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        item = self.page_item(response)
        methods = response.meta.get("playwright_page_methods") or []
        shots = [m.result for m in methods if getattr(m, "method", "") == "screenshot" and m.result]
        if shots:
            item["screenshot"] = shots[-1]
        yield item
