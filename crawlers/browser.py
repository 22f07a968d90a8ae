"""The browser download handler: scrapy-playwright's, with its Chromium pages reused.

scrapy-playwright opens a page (a browser tab) for every request and closes it after. Opening
and closing a tab is most of the browser's work on a small notice page; reusing a few tabs per
context, as a person would, took a 60-page browser crawl from about 3 to 5 pages/s on this
2-core machine.

A page goes back to the pool only after a request that succeeded; one that failed (timeout,
crash, a hostile page) is closed, as scrapy-playwright would, so a stuck page is never reused.
A page is also retired after ``PLAYWRIGHT_PAGE_REUSE`` requests, so a slow leak in a site's
scripts cannot grow without bound. Requests that manage their own page
(``playwright_include_page``, ``playwright_page``) or attach page event handlers go through
scrapy-playwright unchanged.

Risk: this overrides ``_download_request``, a private method of scrapy-playwright (checked
against 0.0.48, the version installed here, and the only one pyproject.toml admits). Its
contract relied on: with ``meta["playwright_page"]`` set to an open page it navigates that page
instead of creating one (after ``page.unroute("**")``), and with ``meta["playwright_include_page"]``
it leaves the page open. tests/test_crawl_browser_contract.py fails, without a browser, when the
installed release or the method's signature differs; tests/test_crawl_browser.py and the bench's
browser stage show a changed behaviour. The fallback is scrapy-playwright's own handler in
crawlers/settings.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Page
from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy_playwright.handler import DEFAULT_CONTEXT_NAME, ScrapyPlaywrightDownloadHandler

log = logging.getLogger(__name__)
_OWN_PAGE_KEYS = ("playwright_include_page", "playwright_page", "playwright_page_event_handlers")


@dataclass
class _Pool:
    """The idle pages of one browser context, and how many requests may hold a page at once."""

    slots: asyncio.Semaphore
    idle: list[tuple[Page, int]] = field(default_factory=list)   # (page, requests it has served)

    def take(self) -> tuple[Page | None, int]:
        while self.idle:
            page, uses = self.idle.pop()
            if not page.is_closed():
                return page, uses
        return None, 0


class PagePoolHandler(ScrapyPlaywrightDownloadHandler):
    """scrapy-playwright's handler, reusing each context's pages between requests."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.page_reuse = crawler.settings.getint("PLAYWRIGHT_PAGE_REUSE", 100)
        self.page_pools: dict[str, _Pool] = {}

    def _page_pool(self, context_name: str) -> _Pool:
        if context_name not in self.page_pools:
            # As many pages as scrapy-playwright allows per context: a new page is only made when
            # none is idle, so the pool never waits on scrapy-playwright's own page semaphore.
            self.page_pools[context_name] = _Pool(asyncio.Semaphore(self.config.max_pages_per_context))
        return self.page_pools[context_name]

    async def _download_request(self, request: Request, spider: Any = None) -> Response:
        if any(request.meta.get(key) for key in _OWN_PAGE_KEYS):
            return await super()._download_request(request, spider)
        pool = self._page_pool(request.meta.get("playwright_context") or DEFAULT_CONTEXT_NAME)
        async with pool.slots:
            page, uses = pool.take()
            if page is not None:
                request.meta["playwright_page"] = page
            request.meta["playwright_include_page"] = True   # scrapy-playwright leaves it open
            try:
                response = await super()._download_request(request, spider)
            except BaseException:
                await self._discard_page(request.meta.pop("playwright_page", None))
                raise
            finally:
                request.meta.pop("playwright_include_page", None)
            await self._release_page(pool, request.meta.pop("playwright_page", None), uses + 1)
            return response

    async def _release_page(self, pool: _Pool, page: Page | None, uses: int) -> None:
        if page is None or page.is_closed():
            return
        if uses >= self.page_reuse:
            await self._discard_page(page)
            return
        pool.idle.append((page, uses))

    async def _discard_page(self, page: Page | None) -> None:
        if page is not None and not page.is_closed():
            try:
                await page.close()
            except Exception as exc:  # noqa: BLE001 - a page that will not close is gone anyway
                log.debug("closing a browser page failed: %s", exc)
            self.stats.inc_value("playwright/page_count/closed")
