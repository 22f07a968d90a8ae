"""Scrapy settings. Values come from loophole.config (the one configuration module); every
setting that departs from Scrapy's default says why."""

from crawlers.frontier import frontier_settings
from loophole.config import load_settings

_config = load_settings()

BOT_NAME = "loophole"
SPIDER_MODULES = ["crawlers.spiders"]
NEWSPIDER_MODULE = "crawlers.spiders"

# Identify ourselves: portals' operators should be able to tell who is crawling and why.
USER_AGENT = _config.crawl.user_agent
ROBOTSTXT_OBEY = _config.crawl.obey_robots

# Politeness: about one request per second per host unless configured otherwise; government
# portals throttle or block aggressive clients and we want the source, not a ban.
CONCURRENT_REQUESTS_PER_DOMAIN = _config.crawl.concurrent_requests_per_domain
DOWNLOAD_DELAY = _config.crawl.download_delay
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = max(DOWNLOAD_DELAY, 0.1)
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Hostile input: cap what we download (a gzip bomb or an endless body must not fill memory).
DOWNLOAD_MAXSIZE = _config.crawl.max_page_bytes
DOWNLOAD_WARNSIZE = _config.crawl.max_page_bytes // 2
DOWNLOAD_TIMEOUT = _config.crawl.timeout_seconds
RETRY_TIMES = _config.crawl.retry_times
# 429 is how portals say "slow down"; retry it (with Retry-After honoured by the back-off).
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 5
# Traps: a calendar or an endless "next page" ends at this depth and request count.
DEPTH_LIMIT = _config.crawl.max_depth
LOOPHOLE_MAX_REQUESTS = _config.crawl.max_requests

# Scrapy hands each response's output (requests and items) to CONCURRENT_ITEMS worker tasks,
# started afresh per response: the default 100 meant 200,000 asyncio tasks for a 2,000-page
# crawl, a third of the reactor's time. Our pipeline ingests synchronously, so more than a
# few in parallel buys nothing; a list page's requests only go to the scheduler.
CONCURRENT_ITEMS = 4

DOWNLOADER_MIDDLEWARES = {
    # Before the download (lower numbers run first on requests): no private addresses.
    "crawlers.middlewares_safety.PrivateAddressMiddleware": 90,
    # Above RedirectMiddleware (600), so an off-site Location is refused before it is followed.
    "crawlers.middlewares_safety.OffsiteRedirectMiddleware": 650,
    # Closest to the download, so a block page is dropped before any other middleware sees it.
    "crawlers.middlewares.BlockPageMiddleware": 950,
    # Above RetryMiddleware (550): responses pass through it first, so the wait for Retry-After
    # (and the host's back-off) happens before the retry is scheduled.
    "crawlers.middlewares.RetryAfterMiddleware": 560,
}
# After DepthMiddleware (900): counts only requests that will be scheduled.
SPIDER_MIDDLEWARES = {
    "crawlers.middlewares_safety.CrawlCapMiddleware": 850,
}
ITEM_PIPELINES = {
    "crawlers.pipelines.IngestPipeline": 300,
}

# scrapy-playwright: only requests with meta["playwright"] go through the browser. Debian's
# Chromium, because Playwright cannot download its own browser on these machines. Our subclass
# reuses browser pages instead of opening a tab per request (crawlers/browser.py says why and
# the risk: it overrides a private method); a page is retired after PLAYWRIGHT_PAGE_REUSE requests.
DOWNLOAD_HANDLERS = {
    "http": "crawlers.browser.PagePoolHandler",
    "https": "crawlers.browser.PagePoolHandler",
}
PLAYWRIGHT_PAGE_REUSE = 100
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "executable_path": _config.browser.executable_path,
    "args": list(_config.browser.args),
    "headless": True,
}
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = _config.browser.timeout_ms
# Keep the browser small on a 2-core machine.
PLAYWRIGHT_MAX_CONTEXTS = 1
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 2

# Scrapy's own log is verbose at DEBUG; the chain logs what matters at INFO.
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False  # no listening port we don't need
FEED_EXPORT_ENCODING = "utf-8"

# Distributed crawling: with `crawl.frontier: redis` the scheduler and duplicate filter are
# scrapy-redis's, shared by every crawler process (crawlers/frontier.py); else Scrapy's own.
globals().update(frontier_settings(_config))
