"""政采云 (zcygov.cn): the cloud platform many provinces' government-procurement sites run on
(浙江, 上海, 安徽, 山西, 广西, 青海, ...). The sites are JavaScript shells over one JSON API, so the
spider reads the API; every site answers the same shapes.

List: ``POST /portal/all`` (the site's unified search, every category; ``keyword``, ``firstCode``
``ZcyAnnouncement``, ``secondCode``, ``publishDateBegin``/``publishDateEnd`` as epoch milliseconds,
``pageNo``, ``pageSize``, ``order`` ``desc``) or ``POST /portal/category`` (one ``categoryCode``,
dates as YYYY-MM-DD). The answer: ``{"success": true, "result": {"data": {"total": N, "data":
[{"articleId", "title", "publishDate", "districtName", "pathName", "procurementMethod",
"gpCatalogName", "author", ...}]}}}``. Detail: ``GET /portal/detail?articleId=ID``: ``{"result":
{"data": {"title", "projectCode", "projectName", "publishDate", "author", "content"}}}``, where
``content`` is the notice's HTML; the JSON is stored as fetched and read through JSON paths.

The shapes were learned from public crawlers of these sites (see the README). Options: ``api``
(``/portal/all`` or ``/portal/category``), ``categories`` (``secondCode``s or ``categoryCode``s;
default: every category through ``/portal/all``), ``rows``, ``days`` (list window), ``max_pages``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import scrapy
from pydantic import Field
from scrapy.http import JsonRequest, Response

from crawlers.spiders.base import NEXT_LIST_PAGE, SourceSpider, SpiderOptions, as_count
from extract.jsondoc import date_text

DEFAULT_API = "/portal/all"
RECORD_FIELDS = {"districtName": "region", "pathName": "notice_category", "procurementMethod": "procurement_method",
                 "gpCatalogName": "category", "author": "publisher", "articleId": "portal_id"}


def record_fields(record: dict[str, Any]) -> dict[str, str]:
    """What the site's list says about a notice, under our field names (the date as YYYY-MM-DD)."""
    fields = {ours: str(record[theirs]).strip() for theirs, ours in RECORD_FIELDS.items() if record.get(theirs)}
    published = date_text(record.get("publishDate"))[:10]
    return {**fields, "date_published": published} if published else fields


class ZcyOptions(SpiderOptions):
    api: str = DEFAULT_API                 # /portal/all, or /portal/category (with categories)
    categories: list[str] = [""]
    days: int | None = Field(None, ge=1)   # the list window; None: the search's days, else 3
    rows: int = Field(15, ge=1)
    max_pages: int = Field(20, ge=1)


class ZcySpider(SourceSpider):
    name = "zcy"
    Options = ZcyOptions
    options: ZcyOptions
    selectors = {"title": "json:result.data.title", "date": "json:result.data.publishDate",
                 "body": "json:result.data.content"}

    @property
    def api(self) -> str:
        return self.options.api

    async def start(self) -> Any:
        for category in self.options.categories:
            yield self.list_request_for(category, "", page=1)
        for request in self.search_requests():
            yield request

    def search_requests(self) -> Iterable[scrapy.Request]:
        return (self.list_request_for("", term, page=1) for term in self.search_terms())

    def body(self, category: str, term: str, page: int) -> dict[str, Any]:
        days = self.options.days or (self.source.search.days if self.source.search else 3)
        today = datetime.now(UTC).date()
        begin, end = today - timedelta(days=days), today + timedelta(days=1)
        rows = self.options.rows
        if self.api.endswith("/category"):
            return {"pageNo": page, "pageSize": rows, "categoryCode": category or "ZcyAnnouncement",
                    "publishDateBegin": str(begin), "publishDateEnd": str(today), "keyword": term}
        return {"keyword": term, "firstCode": "ZcyAnnouncement", "secondCode": category, "districtCode": [],
                "publishDateBegin": _epoch_ms(begin), "publishDateEnd": _epoch_ms(end), "pageNo": page,
                "pageSize": rows, "isTitleSearch": None, "order": "desc", "leaf": "0"}

    def list_request_for(self, category: str, term: str, page: int) -> scrapy.Request:
        return JsonRequest(self.url(self.api), data=self.body(category, term, page), callback=self.parse,
                           meta={"category": category, "term": term, "page": page,
                                 **(NEXT_LIST_PAGE if page > 1 else {})}, dont_filter=True)

    def parse(self, response: Response, **kwargs: Any) -> Any:
        try:
            data = json.loads(response.text)["result"]["data"]
            records = [r for r in data["data"] or [] if isinstance(r, dict) and r.get("articleId")]
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.warning("not a 政采云 list answer at %s: %s", response.url, exc)
            self.crawler.stats.inc_value("lists/unreadable")
            return
        urls = [self.url(f"/portal/detail?articleId={quote(str(r['articleId']), safe='')}") for r in records]
        yield from self.detail_requests(urls, per_url=[{"fields": record_fields(r)} for r in records])
        meta, rows = response.meta, self.options.rows
        more = meta["page"] * rows < as_count(data.get("total")) and meta["page"] < self.options.max_pages
        if self.walk_continues(urls, more, meta["page"]):
            yield self.list_request_for(meta["category"], meta["term"], meta["page"] + 1)

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        yield self.page_item(response, fields=response.meta.get("fields"))


def _epoch_ms(day: Any) -> int:
    """Midnight of ``day`` in UTC+8 (the sites' day) as epoch milliseconds."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8)
    return int(midnight.timestamp() * 1000)
