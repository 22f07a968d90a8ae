"""Shared spider behaviour: source config, ``-a base_url=``, a sample limit, page items,
incremental crawling (a notice already stored is not fetched again), list walks that stop at
notices a finished run left and never run past ``crawl.max_list_pages``, keyword search terms
and attachments fetched one after another with the page.

Spiders only yield requests and items. Everything after the fetch happens in pipelines.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Container, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Self
from urllib.parse import urljoin, urlsplit, urlunsplit

import scrapy
from pydantic import BaseModel, ConfigDict, ValidationError
from scrapy.http import Response
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from crawlers.configured import crawl_settings
from crawlers.items import PageItem
from ground.config import ConfigError, Settings
from ground.sources import Source, load_sources, seed_urls
from index.store import Store

log = logging.getLogger(__name__)

# Meta of a list walk's next page: depth 0 again (Scrapy's ``depth_reset``). A walk is bounded by
# ``crawl.max_list_pages``; counted as depth it was cut at ``crawl.max_depth`` pages, and the
# notices (and attachments) of the last pages it reached were dropped as too deep, never stored.
NEXT_LIST_PAGE = {"depth_reset": True}
# Stats of a run that did not walk its lists to their end (a sample limit, a cap): the notices
# it stored are not a complete prefix of the lists, so the next walk must not stop at them.
CUT_SHORT_STATS = ("pages/over_limit", "lists/pager_clamped", "safety/request_capped", "depth/request_ignored_count")


def _headers(response: Response) -> dict[str, str]:
    return {k.decode("latin-1").lower(): b", ".join(v).decode("latin-1") for k, v in response.headers.items()}


class SpiderOptions(BaseModel):
    """A spider's ``options`` in sources.yaml. Each spider declares its own as a subclass (its
    ``Options``), so a typo or a wrong type is an error naming the file, line and source, as in
    every other section, instead of an option silently ignored."""

    # Numbers become strings where a string is declared (a category code written unquoted).
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def spider_options(spider: type[SourceSpider], source: Source) -> SpiderOptions:
    """``source.options`` read as ``spider``'s Options; ConfigError with the file, line and source id."""
    try:
        return spider.Options.model_validate(source.options)
    except ValidationError as exc:
        raise ConfigError("\n".join(source.problem(("options", *error["loc"]), error["msg"])
                                     for error in exc.errors())) from exc


class SourceSpider(scrapy.Spider):
    """A spider bound to one entry of seeds/sources.yaml (``source_id``, default: its name)."""

    source_id: str = ""
    selectors: dict[str, str] = {}
    # The options this spider reads (none here); subclasses declare theirs and narrow ``options``.
    Options: ClassVar[type[SpiderOptions]] = SpiderOptions
    options: SpiderOptions

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        """The source's politeness overrides apply to this spider's crawler only."""
        super().update_settings(settings)
        source = _registered_source(crawl_settings(settings), cls.source_id or cls.name)
        if source is not None:
            settings.setdict(source.politeness.scrapy_settings(), priority="spider")

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Self:
        """The spider, given the Settings its crawl was started with (never the environment's)."""
        return super().from_crawler(crawler, *args, config=crawl_settings(crawler.settings), **kwargs)

    def __init__(self, base_url: str | None = None, limit: str | int | None = None,
                 source: str | None = None, *, config: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_id = source or self.source_id or self.name
        self.config = config
        self.source: Source = load_sources(self.config.sources_file)[self.source_id]
        self.options = spider_options(type(self), self.source)
        self.mirror = base_url is not None
        self.base_url = (base_url or self.source.base_url).rstrip("/")
        self.allowed_domains = self._domains()
        self.limit = int(limit) if limit else None
        self.expected = 0
        self.requested = 0
        self._store: Store | None = None
        self._walk_boundary: tuple[datetime | None] | None = None  # looked up once, on first use

    # -- configuration -------------------------------------------------------------------

    def _domains(self) -> list[str]:
        """The source's domains, the crawled host and the hosts of its seed URLs (a reseller list
        names pages on many sites; without them the offsite check would drop every seed)."""
        seeds = {urlsplit(url).hostname for url in seed_urls(self.config.sources_file, self.source)}
        extra = set() if self.mirror else {host.lower() for host in seeds if host}
        return sorted({*self.source.domains_for(self.base_url), *extra})

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def on_mirror(self, url: str) -> str:
        """A configured absolute URL (e.g. a download host) moved onto the mirror when crawling one."""
        if not self.mirror:
            return url
        base, target = urlsplit(self.base_url), urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, target.path, target.query, ""))

    def on_site(self, url: str) -> bool:
        """The URL's host is one of the source's domains (or a subdomain); ports do not matter."""
        host = (urlsplit(url).hostname or "").lower()
        return any(host == domain or host.endswith("." + domain) for domain in self.allowed_domains)

    def start_urls_for_source(self) -> Iterable[str]:
        yield from (self.url(path) for path in self.source.start)
        yield from (self.on_mirror(url) for url in seed_urls(self.config.sources_file, self.source))

    def search_terms(self) -> list[str]:
        """The source's fixed terms plus the names of watchlist entities of the configured types."""
        search = self.source.search
        if search is None:
            return []
        terms = list(search.terms)
        if search.watchlist_types:
            from index.entities import load_watchlist

            watchlist = load_watchlist(self.config.watchlist_file)
            terms += [e.name for e in watchlist.entities if e.type in search.watchlist_types]
        return list(dict.fromkeys(terms))

    # -- requests ------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        for url in self.start_urls_for_source():
            yield self.list_request(url)
        for request in self.search_requests():
            yield request

    def search_requests(self) -> Iterable[scrapy.Request]:
        """Requests for the source's keyword search; spiders with a search override this."""
        return ()

    def list_request(self, url: str, **meta: Any) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, meta={**self.render_meta(), **meta})

    def open_store(self) -> Store:
        """The store, opened on first use. A method, not a property: Scrapy's ``Request.to_dict``
        (the Redis frontier pickles requests) runs ``inspect.getmembers`` on the spider, which
        evaluates every property; opening (and migrating) the database there raced with the
        other crawler processes doing the same."""
        if self._store is None:
            self.config.ensure_dirs()  # the first run of a fresh data directory starts here
            self._store = Store(self.config.db_url)
        return self._store

    def stored_among(self, urls: Iterable[str]) -> set[str]:
        """Those already stored, in one query for a whole list page: a notice does not change
        once published, so it is not fetched again."""
        return self.open_store().stored_among(urls)

    def closed(self, reason: str) -> None:
        """Scrapy calls this when the crawl ends: the store's connections go with it."""
        if self._store is not None:
            self._store.close()

    def walk_boundary(self) -> datetime | None:
        """When the last finished walk of this source ended (see ``last_crawl_finished``), read once.
        A method for the reason ``open_store`` is one."""
        if self._walk_boundary is None:
            self._walk_boundary = (last_crawl_finished(self.open_store(), self.source_id),)
        return self._walk_boundary[0]

    def walk_stops_among(self, urls: Iterable[str]) -> bool:
        """Whether a list walk (newest first) may stop at this list page: one of its notices was
        stored before the last run of this source that walked its lists to the end had finished,
        so every older one is stored too.

        A notice stored since then does not stop the walk: a run killed mid-crawl (SIGKILL, OOM,
        a reboot) may have stored it and not older ones further down the list, and so may another
        source (a keyword search). Until the next finished run, the walk goes on past them.
        """
        boundary = self.walk_boundary()
        return boundary is not None and bool(self.open_store().stored_among(urls, before=boundary))

    def may_walk_to(self, page: int) -> bool:
        """Whether a list walk may fetch its page number ``page`` (0 is the first): a pager is not
        believed past ``crawl.max_list_pages`` (endless pagination, a calendar's endless "next")."""
        cap = self.config.crawl.max_list_pages
        if page < cap:
            return True
        self.crawler.stats.inc_value("lists/pager_clamped")
        log.warning("%s: list walk clamped at %d pages (crawl.max_list_pages): the pager still offers more "
                    "(endless pagination or a calendar trap?)", self.source_id, cap)
        return False

    def detail_request(self, url: str, stored: Container[str], callback: Any = None, refetch: bool = False,
                       **meta: Any) -> scrapy.Request | None:
        """A request for a content page, or None once stored or the sample limit is reached.
        ``stored``: the list page's stored URLs, from :meth:`stored_among` in one query."""
        self.expected += 1
        stats = self.crawler.stats
        stats.set_value("pages/expected", self.expected)
        if not refetch and url in stored:
            stats.inc_value("pages/known")
            return None
        if self.limit is not None and self.requested >= self.limit:
            stats.inc_value("pages/over_limit")
            return None
        self.requested += 1
        return scrapy.Request(url, callback=callback or self.parse_page, meta={**self.render_meta(), **meta})

    def detail_requests(self, urls: Sequence[str], per_url: Sequence[dict[str, Any]] | None = None,
                        **meta: Any) -> Iterator[scrapy.Request]:
        """Requests for a list page's notices that are not stored yet, checked in one query;
        ``per_url``: meta for each URL (a list API's fields), beside ``meta`` shared by all."""
        stored = self.stored_among(urls)
        for index, url in enumerate(urls):
            own = per_url[index] if per_url is not None else {}
            request = self.detail_request(url, stored, **meta, **own)
            if request is not None:
                yield request

    def walk_continues(self, urls: Iterable[str], has_next: bool, next_page: int) -> bool:
        """Whether a list walk goes on from the page listing ``urls`` to its page ``next_page``: not
        past a notice that ends the walk (:meth:`walk_stops_among`), nor past ``crawl.max_list_pages``."""
        if self.walk_stops_among(urls):
            self.crawler.stats.inc_value("lists/stopped_at_known")
            return False
        return has_next and self.may_walk_to(next_page)

    def render_meta(self) -> dict[str, Any]:
        return {"playwright": True} if self.source.browser else {}

    # -- blocks --------------------------------------------------------------------------

    def api_block_reason(self, response: Response) -> str | None:
        """Why a JSON API answer is a block page in disguise (a captcha or "too frequent" code),
        or None. The block middleware cannot read an API's codes, so it asks the spider."""
        return None

    def host_blocked(self, request: scrapy.Request, reason: str) -> bool:
        """A block page came for ``request``. True when the spider backs off that one host (a
        discovered seller); False lets the source's own back-off apply."""
        return False

    # -- items ---------------------------------------------------------------------------

    def page_item(self, response: Response, selectors: dict[str, str] | None = None,
                  fields: dict[str, Any] | None = None) -> PageItem:
        self.crawler.stats.inc_value("pages/fetched")
        return PageItem(url=response.request.url if response.request else response.url, final_url=response.url,
                        body=response.body, status=response.status, headers=_headers(response),
                        fetched_at=datetime.now(UTC),
                        render_mode="browser" if response.meta.get("playwright") else "http",
                        source=self.source_id, selectors=selectors if selectors is not None else self.selectors,
                        fields=fields or {}, attachments=[])

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        yield self.page_item(response)

    # -- attachments ---------------------------------------------------------------------

    def with_attachments(self, item: PageItem, links: list[tuple[str, str]]) -> Any:
        """The item, after its attachments are fetched one at a time (politely, in order).

        A failed or oversized download is recorded on the item with the error; it never
        loses the notice.
        """
        allowed = [(url, name) for url, name in links if self.on_site(url)]
        if len(allowed) < len(links):
            # dont_filter below also skips Scrapy's offsite check, so it is done here.
            self.crawler.stats.inc_value("attachments/offsite", len(links) - len(allowed))
        return self._next_attachment(item, allowed)

    def _next_attachment(self, item: PageItem, pending: list[tuple[str, str]]) -> Any:
        if not pending:
            return item
        url, name = pending.pop(0)
        meta = {"item": item, "pending": pending, "name": name,
                "download_maxsize": self.config.crawl.max_attachment_bytes}
        # dont_filter: an attachment shared by two notices must still reach the second one's
        # callback, or that notice would wait forever and never be stored.
        return scrapy.Request(url, callback=self._attachment_done, errback=self._attachment_failed,
                              meta=meta, dont_filter=True)

    def _attachment_done(self, response: Response) -> Any:
        meta = response.meta
        self.crawler.stats.inc_value("attachments/fetched")
        meta["item"]["attachments"].append({"url": response.url, "name": meta["name"], "body": response.body,
                                            "headers": _headers(response), "status": response.status,
                                            "fetched_at": datetime.now(UTC)})
        yield self._next_attachment(meta["item"], meta["pending"])

    def _attachment_failed(self, failure: Failure) -> Any:
        request = failure.request  # type: ignore[attr-defined]
        meta = request.meta
        error = failure.getErrorMessage() or repr(failure.value)
        log.warning("attachment not fetched: %s (%s): %s", meta["name"], request.url, error)
        self.crawler.stats.inc_value("attachments/failed")
        meta["item"]["attachments"].append({"url": request.url, "name": meta["name"], "error": error})
        yield self._next_attachment(meta["item"], meta["pending"])


def as_count(value: Any) -> int:
    """A list API's total or page count; 0 when it is not a count (a hostile 10,000-digit string or
    an infinite float would otherwise raise in the middle of a list walk)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def last_crawl_finished(store: Store, source_id: str) -> datetime | None:
    """When the source's latest crawl run finished, if it ended normally and walked its lists to the
    end; None when there is no such run, or the latest one failed or was cut short. A run killed
    outright records nothing, so the latest record is then the run before it."""
    run = store.latest_crawl_run(source_id)
    if run is None or run.finished_at is None:
        return None
    stats = run.stats or {}
    if stats.get("finish_reason") != "finished" or any(stats.get(key) for key in CUT_SHORT_STATS):
        return None
    return run.finished_at


def _registered_source(config: Settings, source_id: str) -> Source | None:
    try:
        return load_sources(config.sources_file).get(source_id)
    except ConfigError:
        return None
