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
