"""The configuration a crawl runs with, as Scrapy hands it to its components.

Whoever starts a crawl (``loophole crawl``, the service, the ``scrapy`` command through
scrapy.cfg, a test) builds one ``ground.config.Settings`` and puts it in Scrapy's settings
(:func:`scrapy_values`). Spiders, middlewares and pipelines read it from there in
``from_crawler``; none loads it from the environment, so a caller's settings are the ones obeyed.
"""

from __future__ import annotations

from typing import Any

from scrapy.settings import BaseSettings

from crawlers.frontier import frontier_settings
from ground.config import Settings

SETTINGS_KEY = "LOOPHOLE_SETTINGS"
# The ingest step the item pipeline runs ("module.factory", called with the Settings): named by the
# caller, because the chain that stores and scores pages sits above the crawlers (loophole.pipeline).
INGEST_KEY = "LOOPHOLE_INGEST"


class MissingSettings(RuntimeError):
    """A crawler built without the Settings its starter must pass in."""


def crawl_settings(settings: BaseSettings) -> Settings:
    """The Settings in a crawler's Scrapy settings; a clear error, never the environment's, if absent."""
    configured = settings.get(SETTINGS_KEY)
    if not isinstance(configured, Settings):
        raise MissingSettings(f"no {SETTINGS_KEY} in the Scrapy settings: crawls are started by `loophole crawl` "
                              "(or `scrapy` through scrapy.cfg), which build the settings once and pass them in")
    return configured


def scrapy_values(config: Settings) -> dict[str, Any]:
    """The Scrapy settings that come from the configuration: politeness, limits, the browser, the frontier."""
    crawl, browser = config.crawl, config.browser
    return {
        SETTINGS_KEY: config,
        # Identify ourselves: portals' operators should be able to tell who is crawling and why.
        "USER_AGENT": crawl.user_agent,
        "ROBOTSTXT_OBEY": crawl.obey_robots,
        # Politeness: about one request per second per host unless configured otherwise; government
        # portals throttle or block aggressive clients and we want the source, not a ban.
        "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_requests_per_domain,
        "DOWNLOAD_DELAY": crawl.download_delay,
        "AUTOTHROTTLE_START_DELAY": max(crawl.download_delay, 0.1),
        # Hostile input: cap what we download (a gzip bomb or an endless body must not fill memory).
        "DOWNLOAD_MAXSIZE": crawl.max_page_bytes,
        "DOWNLOAD_WARNSIZE": crawl.max_page_bytes // 2,
        "DOWNLOAD_TIMEOUT": crawl.timeout_seconds,
        "RETRY_TIMES": crawl.retry_times,
        # Traps: a calendar or an endless "next page" ends at this depth and request count.
        "DEPTH_LIMIT": crawl.max_depth,
        "LOOPHOLE_MAX_REQUESTS": crawl.max_requests,
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": browser.executable_path, "args": list(browser.args),
                                      "headless": True},
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": browser.timeout_ms,
        # Distributed crawling: with `crawl.frontier: redis` the scheduler and duplicate filter are
        # scrapy-redis's, shared by every crawler process (crawlers/frontier.py); else Scrapy's own.
        **frontier_settings(config),
    }
