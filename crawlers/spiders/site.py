"""Vendor sites, marketplaces and shops: start pages, then links under the source's paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from scrapy.http import Response

from crawlers.spiders.base import SourceSpider


class SiteSpider(SourceSpider):
    """Generic: every source with ``spider: site`` uses it with ``-a source=ID``."""

    name = "site"

    def parse(self, response: Response, **kwargs: Any) -> Any:
        prefixes = self.source.follow or ["/"]
        starts = set(self.start_urls_for_source())
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href)
            path = urlsplit(url).path
            if url in starts or not any(path.startswith(prefix) for prefix in prefixes):
                continue
            request = self.detail_request(url.split("#")[0])
            if request is not None:
                yield request
