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
        """A start page: follow its links under the source's ``follow`` path prefixes. Without
        ``follow`` (a seed list of single reseller ads) the start page is itself the content."""
        if not self.source.follow:
            yield self.page_item(response)
            return
        yield from self.detail_requests(self.followed_links(response))

    def followed_links(self, response: Response) -> list[str]:
        """The page's links under the ``follow`` prefixes, start pages left out, in page order."""
        starts = set(self.start_urls_for_source())
        links = []
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href).split("#")[0]
            path = urlsplit(url).path
            if url not in starts and url.startswith(("http://", "https://")) \
                    and any(path.startswith(prefix) for prefix in self.source.follow):
                links.append(url)
        return links
