"""The one item spiders yield: a fetched page with enough provenance to be evidence."""

from __future__ import annotations

import scrapy


class PageItem(scrapy.Item):
    url = scrapy.Field()
    final_url = scrapy.Field()
    body = scrapy.Field()
    status = scrapy.Field()
    headers = scrapy.Field()
    fetched_at = scrapy.Field()
    render_mode = scrapy.Field()     # "http" or "browser"
    source = scrapy.Field()
    selectors = scrapy.Field()       # site CSS selectors for title/date/body, tried before trafilatura
    fields = scrapy.Field()          # structured fields the spider read from the page (merged into the document's)
    attachments = scrapy.Field()     # [{url, name, body, headers, status, fetched_at} | {url, name, error}]
    screenshot = scrapy.Field()      # PNG bytes of the rendered page (browser sources)
