"""Politeness defaults and Retry-After parsing (the crawl behaviour is in test_crawl_families)."""

from __future__ import annotations

from datetime import UTC, datetime

from crawlers import settings as static
from crawlers.configured import SETTINGS_KEY, scrapy_values
from crawlers.middlewares import retry_after_seconds
from ground.config import Settings
from loophole.crawl import scrapy_settings


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Sun, 22 Nov 2026 03:01:30 GMT", now) == 90
    assert retry_after_seconds("Sun, 22 Nov 2026 02:00:00 GMT", now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_polite_by_default() -> None:
    """The defaults of the settings model, not the developer's own config (nothing is loaded)."""
    values = scrapy_values(Settings())
    assert values["ROBOTSTXT_OBEY"] and static.AUTOTHROTTLE_ENABLED
    assert values["DOWNLOAD_DELAY"] >= 1 and values["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert "LoopholeWatch" in values["USER_AGENT"] and 429 in static.RETRY_HTTP_CODES
    order = static.DOWNLOADER_MIDDLEWARES
    assert order["crawlers.middlewares.RetryAfterMiddleware"] > 550  # sees responses before RetryMiddleware


def test_a_crawl_obeys_the_settings_it_is_given() -> None:
    """The caller's Settings reach Scrapy whole, whatever the environment holds."""
    given = Settings.model_validate({"crawl": {"download_delay": 7.5, "max_depth": 3, "obey_robots": False}})
    project = scrapy_settings(given)
    assert project[SETTINGS_KEY] is given
    assert project.getfloat("DOWNLOAD_DELAY") == 7.5 and project.getint("DEPTH_LIMIT") == 3
    assert not project.getbool("ROBOTSTXT_OBEY") and project["LOOPHOLE_INGEST"] == "loophole.pipeline.shared_monitor"
