"""Seller discovery: search the web for the reseller vocabulary through a SearXNG instance's JSON
API, queue every host the results name (one row per host, ``crawlers/discovery.py``), and crawl
the queued hosts' result pages, each host in turn, a page at a time, within a daily cap. A host
whose pages raised an alert is crawled again on a schedule; a block page backs that host off.

Search: ``GET {searxng}/search?q=TERM&format=json&pageno=N`` (``language``, ``time_range``,
``engines`` from the config's ``discovery`` section). The answer: ``{"query", "number_of_results",
"results": [{"url", "title", "content", "engine", "engines", "score", "parsed_url", ...}],
"answers", "corrections", "infoboxes", "suggestions", "unresponsive_engines": [[engine, reason]]}``.
The instance must allow the json format (``search.formats`` in its settings.yml), else it answers 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from crawlers.discovery import HostQueue, Visit, read_searxng, searxng_query
from crawlers.spiders.base import SourceSpider


class DiscoverySpider(SourceSpider):
    name = "discovery"

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """Scrapy's own scheduler, in one process, even with ``crawl.frontier: redis``: the spider
        keeps its visits' order itself (searches first, then each host a page at a time)."""
        super().update_settings(settings)
        settings.set("SCHEDULER", "scrapy.core.scheduler.Scheduler", priority="spider")
        settings.set("DUPEFILTER_CLASS", "scrapy.dupefilters.RFPDupeFilter", priority="spider")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = self.config.discovery.searxng_url
        if configured and not self.mirror:  # the config names the instance; a mirror replaces it in tests
            self.base_url = configured.rstrip("/")
            self.allowed_domains = self.source.domains_for(self.base_url)
        self.backed_off: set[str] = set()
        self.new_hosts = 0
        self.searches_left = 0

    @cached_property
    def queue(self) -> HostQueue:
        return HostQueue(self.open_store(), self.source_id, self.config.discovery,
                         self.config.crawl.block_backoff_minutes)

    async def start(self) -> Any:
        """Every search first; the hosts are visited once all answers are in, so that a host named
        by several searches is visited once, with every page they found on it."""
        self.queue.refresh_flags()
        searches = [(term, page) for term in self.search_terms()
                    for page in range(1, self.config.discovery.result_pages + 1)]
        self.searches_left = len(searches)
        for term, page in searches:
            yield self.search_request(term, page)
        if not searches:
            for request in self.visits():
                yield request

    # -- search ------------------------------------------------------------------------------

    def search_request(self, term: str, page: int) -> scrapy.Request:
        return scrapy.Request(self.url(searxng_query(term, page, self.config.discovery)), callback=self.parse,
                              errback=self.search_failed, meta={"term": term, "handle_httpstatus_list": [403]},
                              dont_filter=True)

    def parse(self, response: Response, **kwargs: Any) -> Any:
        self.read_results(response)
        yield from self.search_done()

    def search_failed(self, failure: Failure) -> Any:
        """An instance that cannot be reached (not running, wrong URL) degrades the run; the hosts
        already queued are still visited."""
        error = failure.getErrorMessage() or repr(failure.value)
        self.logger.warning("SearXNG search failed at %s: %s", self.base_url, error)
        self.crawler.stats.set_value("source_degraded", f"SearXNG search failed: {error}"[:300])
        yield from self.search_done()

    def search_done(self) -> Iterator[scrapy.Request]:
        self.searches_left -= 1
        if self.searches_left == 0:
            yield from self.visits()

    def read_results(self, response: Response) -> None:
        """Queue the hosts an answer names; a search no engine answered degrades the run (it is not
        "nothing found"), and so does an instance that refuses the json format."""
        stats = self.crawler.stats
        if response.status == 403:
            self.logger.error("SearXNG at %s refused format=json (403): add json to search.formats in its "
                              "settings.yml", self.base_url)
            stats.set_value("source_degraded", "SearXNG refused format=json")
            return
        try:
            answer = read_searxng(response.text)
        except ValueError as exc:
            self.logger.warning("%s at %s", exc, response.url)
            stats.inc_value("lists/unreadable")
            return
        if answer.unresponsive:
            silent = ", ".join(answer.unresponsive)
            self.logger.warning("SearXNG engines did not answer: %s", silent)
            if not answer.urls:
                stats.set_value("source_degraded", f"search engines unresponsive: {silent}"[:300])
        stats.inc_value("discovery/results", len(answer.urls))
        stats.inc_value("discovery/hosts_queued", len(self.queue.add_results(answer.urls, response.meta["term"])))

    # -- hosts -------------------------------------------------------------------------------

    def visits(self) -> Iterator[scrapy.Request]:
        for visit in self.queue.due():
            yield from self.visit(visit)

    def visit(self, visit: Visit) -> Iterator[scrapy.Request]:
        """The first page of a host's visit; each page's callback asks for the next, so the host is
        fetched one page at a time and a block page ends its visit."""
        if not visit.urls:
            return
        if not visit.recrawl and self.new_hosts >= self.config.discovery.max_new_hosts_per_run:
            self.crawler.stats.inc_value("discovery/hosts_left_queued")
            return  # stays queued for the next run
        self.new_hosts += 0 if visit.recrawl else 1
        self.crawler.stats.inc_value("discovery/hosts_recrawled" if visit.recrawl else "discovery/hosts_crawled")
        # On the allowed list: robots.txt and redirects within the host pass the offsite checks.
        self.allowed_domains.append(urlsplit(visit.urls[0]).hostname or "")
        request = self.host_request(visit.host, visit.urls, visit.allowance, visit.recrawl)
        if request is not None:
            yield request

    def host_request(self, host: str, pending: list[str], allowance: int, recrawl: bool) -> scrapy.Request | None:
        """The next page of a host's visit, or None when the visit is over (pages, cap or limit)."""
        while pending:
            if allowance <= 0:
                self.crawler.stats.inc_value("discovery/capped")
                break
            url, pending = pending[0], pending[1:]
            request = self.detail_request(url, self.stored_among([url]), refetch=recrawl, host=host,
                                          pending=pending, allowance=allowance - 1, recrawl=recrawl)
            if request is not None:
                return request.replace(errback=self.page_failed)
        self.queue.crawled(host)
        return None

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        meta = response.meta
        self.queue.fetched(meta["host"])
        yield self.page_item(response, fields={"discovered_by": "searxng", "host": meta["host"]})
        yield from self._next(meta)

    def page_failed(self, failure: Failure) -> Any:
        meta = failure.request.meta  # type: ignore[attr-defined]
        if meta["host"] not in self.backed_off:
            yield from self._next(meta)

    def _next(self, meta: dict[str, Any]) -> Iterator[scrapy.Request]:
        request = self.host_request(meta["host"], meta["pending"], meta["allowance"], meta["recrawl"])
        if request is not None:
            yield request

    def host_blocked(self, request: scrapy.Request, reason: str) -> bool:
        host = request.meta.get("host")
        if host is None:
            return False  # the search instance itself: the source backs off as usual
        until = self.queue.back_off(host, reason)
        self.backed_off.add(host)
        self.crawler.stats.inc_value("discovery/hosts_backed_off")
        self.logger.warning("discovered host %s answered with a block page (%s): left alone until %s",
                            host, reason, until.isoformat())
        return True

    def closed(self, reason: str) -> None:
        """Alerts raised on this run's pages put their hosts on the re-crawl schedule now."""
        if self._store is not None:
            flagged = self.queue.refresh_flags()
            self.crawler.stats.set_value("discovery/hosts_flagged", len(flagged))
        super().closed(reason)
