"""China Government Procurement Network (www.ccgp.gov.cn): channel lists, keyword search, notices.

List pages: ``ul.c_list_bid li a`` to detail pages ``/cggg/{zygg|dfgg}/{type}/{YYYYMM}/t{date}_{id}.htm``;
the page count from the page's ``Pager({size:N, current:M, ...})`` call (index.htm, index_1.htm, ...).
Pages are walked one after another, newest first, and the walk stops on the first page that
holds a notice stored before the last finished run: everything older was seen then
(``SourceSpider.walk_stops_among``); it never goes past ``crawl.max_list_pages``.
Search: ``search.ccgp.gov.cn/bxsearch`` with the watch terms, a date range and the notice-type
(``bidType``), scope (``bidSort``) and category (``pinMu``) filters from the source's search params.
Details come in two templates (vF_ and vT_ classes); the 公告概要 table and the body are kept;
attachments are ``a.bizDownload`` links whose id is a uuid for the download service.

Options (sources.yaml ``options``): ``attachment_url`` (``{uuid}`` template), ``search_url``,
``max_pages`` (per channel walk), ``all_channels`` (``zygg`` or ``dfgg``: walk every channel's list
under that scope, besides the start paths).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import scrapy
from pydantic import Field
from scrapy.http import Response

from crawlers.spiders.base import NEXT_LIST_PAGE, SourceSpider, SpiderOptions

# The arguments of a ``Pager({...})`` call, read at most PAGER_ARGS_CHARS far. Bounded, and size
# and current looked up inside them separately: one pattern with two lazy ``[^}]*?`` runs took
# quadratic time on a hostile list page (26 s for 140 kB of "Pager({"), blocking the crawl.
PAGER_ARGS_CHARS = 500
_PAGER_CALL = re.compile(r"Pager\(\{([^}]{0,%d})" % PAGER_ARGS_CHARS)  # noqa: UP031 - a regex full of braces
_PAGER_SIZE = re.compile(r"\bsize\s{0,20}:\s{0,20}(\d{1,9})\b")
_DETAIL_PATH = re.compile(r"/cggg/(zygg|dfgg)/(\w+)/\d{6}/t\d{8}_\d+\.htm$")
_ATTACHMENT_SUFFIX = re.compile(r"\.(pdf|docx?|xlsx?|zip|rar)$", re.IGNORECASE)
# The channel folder names as CCGP uses them, with the notice type each carries.
CHANNEL_TYPES = {
    "gkzb": "公开招标", "yqzb": "邀请招标", "jzxtp": "竞争性谈判", "jzxcs": "竞争性磋商", "xjgg": "询价公告",
    "dylygg": "单一来源", "zgysgg": "资格预审", "zbgg": "中标公告", "cjgg": "成交公告", "gzgg": "更正公告",
    "zzgg": "终止公告", "fblbgg": "废标流标", "htgg": "合同公告", "qtgg": "其他公告", "cgyx": "采购意向",
}
# http, not https: the search host answers 500 over https (public crawlers' notes, 2026-10), and its
# own forms post to http.
SEARCH_URL = "http://search.ccgp.gov.cn/bxsearch"
DEFAULT_SEARCH = {"searchtype": "1", "page_index": "1", "bidSort": "0", "pinMu": "0", "bidType": "0",
                  "dbselect": "bidx", "timeType": "6", "displayZone": "", "zoneId": "", "pppStatus": "0",
                  "buyerName": "", "projectId": "", "agentName": ""}


def pager_size(text: str) -> int | None:
    """The page count of the first ``Pager({size:N, ...})`` call on a list page, or None. Digits are
    capped at nine: a hostile pager's 5,000-digit size would make ``int`` raise."""
    for call in _PAGER_CALL.finditer(text):
        size = _PAGER_SIZE.search(call.group(1))
        if size:
            return int(size.group(1))
    return None


def channel_fields(url: str) -> dict[str, str]:
    """Scope (central/local) and channel type from a detail URL's path."""
    match = _DETAIL_PATH.search(urlsplit(url).path)
    if not match:
        return {}
    scope, folder = match.groups()
    return {"scope": "central" if scope == "zygg" else "local", "channel": CHANNEL_TYPES.get(folder, folder)}


class CcgpOptions(SpiderOptions):
    attachment_url: str = "https://download.ccgp.gov.cn/oss/download?uuid={uuid}"   # with {uuid}
    search_url: str = SEARCH_URL
    max_pages: int = Field(50, ge=1)                    # per list walk (a channel, a search term)
    all_channels: Literal["zygg", "dfgg"] | None = None  # walk every channel's list under this scope


class CcgpSpider(SourceSpider):
    name = "ccgp"
    Options = CcgpOptions
    options: CcgpOptions
    selectors = {
        "title": "div.vF_detail_header h2, div.vT_detail_header h2, .vT-srch-result h2",
        "date": "#pubTime",
        "body": "div.table, div.vF_detail_content, div.vT_detail_content",
    }
    list_links = "ul.c_list_bid li > a::attr(href), ul.c_list_tat li > a::attr(href)"
    search_links = "ul.vT-srch-result-list-bid li > a::attr(href)"

    # -- channel lists ---------------------------------------------------------------------

    def start_urls_for_source(self) -> Iterable[str]:
        """The configured start paths, then, with ``all_channels: <scope>``, the list of every channel
        CCGP publishes under that scope (``CHANNEL_TYPES``): a channel nobody listed is walked too."""
        yield from super().start_urls_for_source()
        scope = self.options.all_channels
        if scope:
            yield from (self.url(f"/cggg/{scope}/{folder}/index.htm") for folder in CHANNEL_TYPES)

    def parse(self, response: Response, **kwargs: Any) -> Any:
        """One list page: its unseen notices, then the next page unless this one held a notice that
        ends the walk (see ``walk_stops_among``)."""
        urls = [response.urljoin(href) for href in response.css(self.list_links).getall()]
        yield from self.detail_requests(urls)
        page = response.meta.get("page", 0)
        next_page = self._next_page(response, page)
        if self.walk_continues(urls, next_page is not None, page + 1) and next_page is not None:
            yield self.list_request(next_page, page=page + 1, **NEXT_LIST_PAGE)

    def _next_page(self, response: Response, page: int) -> str | None:
        pages = pager_size(response.text)
        if pages is None or page + 1 >= min(pages, self.options.max_pages):
            return None
        return response.urljoin(f"index_{page + 1}.htm")

    # -- keyword search --------------------------------------------------------------------

    def search_requests(self) -> Iterable[scrapy.Request]:
        for term in self.search_terms():
            yield self.list_request(self.search_url(term, 1), callback_name="search", term=term, page=1)

    def list_request(self, url: str, **meta: Any) -> scrapy.Request:
        callback = self.parse_search if meta.pop("callback_name", None) == "search" else self.parse
        return scrapy.Request(url, callback=callback, meta={**self.render_meta(), **meta})

    def search_url(self, term: str, page: int) -> str:
        """bxsearch URL for one term and result page, dates as YYYY:MM:DD (CCGP's format)."""
        assert self.source.search is not None
        today = datetime.now(UTC).date()
        start = today - timedelta(days=self.source.search.days)
        params = {**DEFAULT_SEARCH, **self.source.search.params, "kw": term, "page_index": str(page),
                  "start_time": start.strftime("%Y:%m:%d"), "end_time": today.strftime("%Y:%m:%d")}
        base = self.on_mirror(self.options.search_url)
        return f"{base}?{urlencode(params)}"

    def parse_search(self, response: Response, **kwargs: Any) -> Any:
        urls = [self.on_mirror(response.urljoin(href)) for href in response.css(self.search_links).getall()]
        yield from self.detail_requests(urls)
        pages = pager_size(response.text)
        page = response.meta["page"]  # 1-based here, as bxsearch counts
        if self.walk_continues(urls, pages is not None and page < min(pages, self.options.max_pages), page):
            term = response.meta["term"]
            yield self.list_request(self.search_url(term, page + 1), callback_name="search", term=term,
                                    page=page + 1, **NEXT_LIST_PAGE)

    # -- notices -----------------------------------------------------------------------------

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        item = self.page_item(response, fields=channel_fields(response.url))
        yield self.with_attachments(item, self.attachment_links(response))

    def attachment_links(self, response: Response) -> list[tuple[str, str]]:
        """(url, file name): bizDownload uuids first, then plain links to documents on the page."""
        template = self.on_mirror(self.options.attachment_url)
        links = []
        for anchor in response.css("a.bizDownload"):
            uuid = anchor.attrib.get("id", "").strip()
            if re.fullmatch(r"[A-Za-z0-9\-]{8,64}", uuid):
                links.append((template.format(uuid=uuid), anchor.xpath("string()").get("").strip() or uuid))
        for anchor in response.css("div.vF_detail_content a[href], div.vT_detail_content a[href]"):
            href = anchor.attrib["href"]
            if _ATTACHMENT_SUFFIX.search(urlsplit(href).path):
                links.append((response.urljoin(href), anchor.xpath("string()").get("").strip() or href))
        unique = list(dict.fromkeys(links))
        return unique[: self.config.crawl.max_attachments_per_page]
