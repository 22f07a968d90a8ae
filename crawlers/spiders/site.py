"""Vendor sites, resellers and shops: start pages (or a seed list), then links under the source's paths."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from scrapy.http import Response

from crawlers.spiders.base import SourceSpider


class SiteSpider(SourceSpider):
    """Generic: every source with ``spider: site`` uses it (``scrapy crawl SOURCE_ID``)."""

    name = "site"

    def parse(self, response: Response, **kwargs: Any) -> Any:
        """A start page: follow its links under the source's path prefixes; a seed page with
        nothing to follow (a single reseller ad) is itself the content."""
        prefixes = self.source.follow or ["/"]
        starts = set(self.start_urls_for_source())
        followed = 0
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href).split("#")[0]
            path = urlsplit(url).path
            if url in starts or not url.startswith(("http://", "https://")) \
                    or not any(path.startswith(prefix) for prefix in prefixes):
                continue
            followed += 1
            request = self.detail_request(url)
            if request is not None:
                yield request
        if not followed and not self.source.follow:
            yield self.page_item(response)
