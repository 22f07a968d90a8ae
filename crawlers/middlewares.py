"""Downloader middlewares, one job each: block pages, and honouring Retry-After."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response, TextResponse
from scrapy.utils.defer import deferred_from_coro

from crawlers.configured import crawl_settings
from extract.blocks import block_reason
from extract.page import visible_text

log = logging.getLogger(__name__)
MAX_SLOT_DELAY = 60.0


def _slow_down(crawler: Any, request: Request, delay: float) -> None:
    """Raise the delay of the request's download slot (its host) to at least ``delay`` seconds."""
    downloader = crawler.engine.downloader
    key = request.meta.get(downloader.DOWNLOAD_SLOT) or downloader.get_slot_key(request)
    slot = downloader.slots.get(key)
    if slot is not None:
        slot.delay = min(max(slot.delay, delay), MAX_SLOT_DELAY)


def _is_json(response: TextResponse) -> bool:
    """A JSON API answer: a short one (no results) is not an empty shell; an HTML block page
    served in its place is still checked."""
    content_type = (response.headers.get("Content-Type") or b"").lower()
    return b"json" in content_type or response.text.lstrip()[:1] in ("{", "[")


class BlockPageMiddleware:
    """Portals answer crawlers with HTTP 200 block pages; such a page is never content.

    The request is dropped, the reason counted (``blocked/<reason>``), the host slowed down
    (its delay doubled); after ``crawl.block_threshold`` block pages in a run the spider stops
    with the source marked degraded and ``backoff_until`` set, and the next run (scheduled or
    by hand) waits until then. Notices not fetched are not stored, so that run fetches them.
    A JSON API answer is a block when its spider says so (``api_block_reason``: a captcha code);
    a spider that crawls many unrelated hosts backs the one host off instead (``host_blocked``).
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.config = crawl_settings(crawler.settings)
        self.stats = crawler.stats
        self.blocked = 0
        self.closing = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> BlockPageMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status != 200 or not isinstance(response, TextResponse) or request.meta.get("allow_short"):
            return response
        reason = self._api_block(response) if _is_json(response) else self._page_block(response)
        if reason:
            self._blocked(request, reason)
            raise IgnoreRequest(f"block page: {reason}")
        return response

    @staticmethod
    def _page_block(response: TextResponse) -> str | None:
        # The response's own selector, parsed once and cached: the spider's callback reuses it.
        page = response.selector
        return block_reason(visible_text(page), page.css("title::text").get(default=""), response.text)

    def _api_block(self, response: TextResponse) -> str | None:
        """A JSON answer's own block codes (a captcha, "too frequent"), as its spider reads them."""
        reader = getattr(self.crawler.spider, "api_block_reason", None)
        return reader(response) if reader is not None else None

    def _blocked(self, request: Request, reason: str) -> None:
        log.warning("block page at %s: %s", request.url, reason)
        self.stats.inc_value(f"blocked/{reason}")
        settings = self.config
        per_host = getattr(self.crawler.spider, "host_blocked", None)
        if per_host is not None and per_host(request, reason):
            return  # the spider backs that host off (a discovered seller), not the whole source
        self.blocked += 1
        self.stats.set_value("source_degraded", reason)
        _slow_down(self.crawler, request, max(settings.crawl.download_delay, 1.0) * 2 ** self.blocked)
        if self.blocked >= settings.crawl.block_threshold and not self.closing:
            self.closing = True
            until = datetime.now(UTC) + timedelta(minutes=settings.crawl.block_backoff_minutes)
            self.stats.set_value("backoff_until", until.isoformat())
            log.warning("%d block pages: stopping; the source backs off until %s", self.blocked, until.isoformat())
            deferred_from_coro(self.crawler.engine.close_spider_async(reason=f"blocked: {reason}"))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryAfterMiddleware:
    """Back-off for responses the retry middleware (which runs after this one) will retry.

    With Retry-After: wait that long (up to ``crawl.max_retry_after_seconds``) and keep the host
    at least that slow; a longer Retry-After marks the source degraded instead of stalling the
    crawl. Without it: the host's delay doubles (exponential back-off per failure)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.config = crawl_settings(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RetryAfterMiddleware:
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Response:
        if response.status not in {int(code) for code in self.crawler.settings.getlist("RETRY_HTTP_CODES")}:
            return response
        seconds = retry_after_seconds((response.headers.get("Retry-After") or b"").decode("latin-1"))
        if seconds is None:
            delay = self.config.crawl.download_delay
            _slow_down(self.crawler, request, max(delay, 0.5) * 2 ** (request.meta.get("retry_times", 0) + 1))
            return response
        cap = self.config.crawl.max_retry_after_seconds
        stats = self.crawler.stats
        if seconds > cap:
            stats.set_value("source_degraded", f"rate limited (Retry-After {seconds:.0f}s)")
            return response
        stats.inc_value("retry_after/waited")
        log.info("Retry-After %.1fs from %s; waiting", seconds, request.url)
        _slow_down(self.crawler, request, seconds)
        await asyncio.sleep(seconds)
        return response
