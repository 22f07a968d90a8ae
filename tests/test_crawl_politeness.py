"""Politeness defaults and Retry-After parsing (the crawl behaviour is in test_crawl_families)."""

from __future__ import annotations

from datetime import UTC, datetime

from crawlers import settings as scrapy_settings
from crawlers.middlewares import retry_after_seconds


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Sun, 22 Nov 2026 03:01:30 GMT", now) == 90
    assert retry_after_seconds("Sun, 22 Nov 2026 02:00:00 GMT", now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_polite_by_default() -> None:
    assert scrapy_settings.ROBOTSTXT_OBEY and scrapy_settings.AUTOTHROTTLE_ENABLED
    assert scrapy_settings.DOWNLOAD_DELAY >= 1 and scrapy_settings.CONCURRENT_REQUESTS_PER_DOMAIN == 1
    assert "LoopholeWatch" in scrapy_settings.USER_AGENT and 429 in scrapy_settings.RETRY_HTTP_CODES
    order = scrapy_settings.DOWNLOADER_MIDDLEWARES
    assert order["crawlers.middlewares.RetryAfterMiddleware"] > 550  # sees responses before RetryMiddleware
