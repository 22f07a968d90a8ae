"""Static Scrapy settings: every setting that departs from Scrapy's default says why.

Nothing is read from the configuration here. Those values (politeness, limits, the browser, the
frontier, the Settings themselves) are added by whoever starts the crawl, from the Settings it
built (crawlers.configured.scrapy_values); without them the crawl's components refuse to start.
"""

BOT_NAME = "loophole"
SPIDER_MODULES = ["crawlers.spiders"]
# Lists one spider per configured source beside the spider classes (scrapy list, scrapy crawl SOURCE_ID).
SPIDER_LOADER_CLASS = "crawlers.spiders.registry.SourceSpiderLoader"
NEWSPIDER_MODULE = "crawlers.spiders"

# Politeness (the delay, concurrency and robots.txt are configured: crawlers.configured).
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# 429 is how portals say "slow down"; retry it (with Retry-After honoured by the back-off).
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 5

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
# Keep the browser small on a 2-core machine.
PLAYWRIGHT_MAX_CONTEXTS = 1
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 2

# Scrapy's own log is verbose at DEBUG; the chain logs what matters at INFO.
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False  # no listening port we don't need
FEED_EXPORT_ENCODING = "utf-8"
