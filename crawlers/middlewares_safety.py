"""Safety middlewares: where the crawler may go and how much it may fetch. One job each.

Scrapy already enforces size (DOWNLOAD_MAXSIZE, also on decompressed gzip), time
(DOWNLOAD_TIMEOUT), redirect counts (REDIRECT_MAX_TIMES), depth (DEPTH_LIMIT) and allowed
domains (OffsiteMiddleware). What it does not do, and these add:

* :class:`PrivateAddressMiddleware`: no request to a private, loopback or link-local address
  (169.254.169.254 is a cloud's metadata service) unless the source sets ``allow_private``.
  The host of the crawl's own base URL is always allowed: the operator named it.
* :class:`OffsiteRedirectMiddleware`: a redirect off the source's allowed domains, or back into
  its own chain (a loop), is refused with a warning before it is followed.
* :class:`CrawlCapMiddleware`: at most ``crawl.max_requests`` requests per crawl, and a warning
  when the depth cap cut a branch (a calendar or an endless "next page").
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response

log = logging.getLogger(__name__)


def is_private_host(host: str) -> bool:
    """True for loopback, private, link-local, reserved or unspecified addresses and *localhost* names."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global or address.is_multicast


class _SpiderAware:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> Any:
        return cls(crawler)

    @property
    def spider(self) -> Any:
        return self.crawler.spider


class PrivateAddressMiddleware(_SpiderAware):
    """Refuse private addresses by name before the request, and by the connected IP after it
    (a public name may resolve to a private address)."""

    def _allowed(self, host: str) -> bool:
        source = getattr(self.spider, "source", None)
        if source is not None and source.allow_private:
            return True
        base_host = urlsplit(getattr(self.spider, "base_url", "") or "").hostname or ""
        return host.lower() == base_host.lower()

    def _refuse(self, url: str, address: str) -> IgnoreRequest:
        source = getattr(self.spider, "source_id", self.spider.name)
        log.warning("refused %s: private address %s (source %s does not allow private addresses)",
                    url, address, source)
        self.stats.inc_value("safety/private_refused")
        return IgnoreRequest(f"private address {address}")

    def process_request(self, request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        if is_private_host(host) and not self._allowed(host):
            raise self._refuse(request.url, host)

    def process_response(self, request: Request, response: Response) -> Response:
        host = urlsplit(request.url).hostname or ""
        address = getattr(response, "ip_address", None)
        if address is not None and is_private_host(str(address)) and not self._allowed(host):
            raise self._refuse(request.url, str(address))
        return response


def host_allowed(host: str, domains: Iterable[str]) -> bool:
    """The host is one of the domains or a subdomain of one (ports play no part)."""
    host = host.lower().rstrip(".")
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains)


class OffsiteRedirectMiddleware(_SpiderAware):
    """Refuse a 3xx whose Location leaves the source's allowed domains or returns to a URL of
    the same redirect chain (a loop that Scrapy's duplicate filter would otherwise end silently)."""

    def process_response(self, request: Request, response: Response) -> Response:
        location = response.headers.get(b"Location")
        if not (300 <= response.status < 400 and location):
            return response
        target = urljoin(request.url, location.decode("latin-1"))
        domains = getattr(self.spider, "allowed_domains", None) or []
        if domains and not host_allowed(urlsplit(target).hostname or "", domains):
            log.warning("refused off-site redirect from %s to %s (allowed: %s)", request.url, target,
                        ", ".join(domains))
            self.stats.inc_value("safety/offsite_redirect_refused")
            raise IgnoreRequest(f"off-site redirect to {target}")
        if target in (request.url, *request.meta.get("redirect_urls", [])):
            log.warning("refused redirect loop at %s (back to %s)", request.url, target)
            self.stats.inc_value("safety/redirect_loop_refused")
            raise IgnoreRequest(f"redirect loop at {request.url}")
        return response


class CrawlCapMiddleware(_SpiderAware):
    """Spider middleware: stop scheduling beyond ``max_requests`` and say when depth cut a branch.

    Placed after Scrapy's DepthMiddleware, so it counts only the requests that will be scheduled.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.max_requests = crawler.settings.getint("LOOPHOLE_MAX_REQUESTS", 20000)
        self.scheduled = 0
        self.warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning(message, *args)

    def _check_depth(self) -> None:
        if self.stats.get_value("depth/request_ignored_count"):
            self._warn_once("depth", "depth cap %s reached in %s: deeper links dropped (calendar or pagination trap?)",
                            self.crawler.settings.getint("DEPTH_LIMIT"), self.spider.name)

    def _keep(self, item: Any) -> bool:
        if not isinstance(item, Request):
            return True
        if self.scheduled >= self.max_requests:
            self.stats.inc_value("safety/request_capped")
            self._warn_once("cap", "request cap %d reached in %s: further links dropped", self.max_requests,
                            self.spider.name)
            return False
        self.scheduled += 1
        return True

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        yield from (item for item in result if self._keep(item))
        self._check_depth()

    async def process_spider_output_async(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in result:
            if self._keep(item):
                yield item
        self._check_depth()
