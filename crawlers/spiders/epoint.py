"""Public-resource trading portals on the Epoint platform (Jiangsu, and many provinces and
cities on the same software): one JSON search API lists notices, detail pages are static HTML.

List: ``POST {api}`` with a JSON body (``pn`` offset, ``rn`` rows, ``condition`` on
``categorynum``, optional ``wd`` keyword); the answer is ``{"result": {"totalcount": N,
"records": [{"titlenew", "linkurl", "infodateformat", "categoryname", "zhuanzai", ...}]}}``.
Detail: ``linkurl`` relative to the site; title ``h2.ewb-trade-h``, body ``div.ewb-trade-con``.
The walk stops at the first page holding a notice a finished run stored, as on CCGP.

Options: ``api`` (path), ``categories`` (categorynum list), ``rows`` (page size), ``max_pages``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import scrapy
from pydantic import Field
from scrapy.http import Response

from crawlers.spiders.base import NEXT_LIST_PAGE, SourceSpider, SpiderOptions, as_count

DEFAULT_API = "/inteligentsearch/rest/esinteligentsearch/getFullTextDataNew"


def record_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The list record's own structured fields (what the portal says about its notice)."""
    names = {"categoryname": "notice_category", "zhuanzai": "region", "infodateformat": "date_published",
             "zhuanzainew": "platform", "infoid": "portal_id"}
    return {ours: str(record[theirs]) for theirs, ours in names.items() if record.get(theirs)}


class EpointOptions(SpiderOptions):
    api: str = DEFAULT_API
    categories: list[str] = ["003001001"]   # categorynum codes
    rows: int = Field(20, ge=1)             # page size
    max_pages: int = Field(20, ge=1)


class EpointSpider(SourceSpider):
    name = "epoint"
    Options = EpointOptions
    options: EpointOptions
    selectors = {"title": "h2.ewb-trade-h", "date": "div.ewb-trade-info", "body": "div.ewb-trade-con"}

    async def start(self) -> Any:
        for category in self.options.categories:
            yield self.api_request(category, page=0)
        for request in self.search_requests():
            yield request

    def search_requests(self) -> Iterable[scrapy.Request]:
        for term in self.search_terms():
            yield self.api_request("", page=0, term=term)

    def api_body(self, category: str, page: int, term: str = "") -> dict[str, Any]:
        rows = self.options.rows
        days = self.source.search.days if self.source.search else 30
        today = datetime.now(UTC).date()
        condition = [{"fieldName": "categorynum", "equal": category, "isLike": True, "likeType": 2}] if category else []
        return {"token": "", "pn": page * rows, "rn": rows, "wd": term, "fields": "title", "cnum": "001",
                "sort": '{"infodatepx":"0"}', "ssort": "title", "cl": 200, "condition": condition,
                "time": [{"fieldName": "infodatepx", "startTime": f"{today - timedelta(days=days)} 00:00:00",
                          "endTime": f"{today} 23:59:59"}], "highlights": "title", "isBusiness": "1"}

    def api_request(self, category: str, page: int, term: str = "") -> scrapy.Request:
        body = json.dumps(self.api_body(category, page, term), ensure_ascii=False)
        return scrapy.Request(self.url(self.options.api), method="POST", body=body,
                              headers={"Content-Type": "application/json;charset=UTF-8"}, callback=self.parse,
                              meta={"category": category, "page": page, "term": term,
                                    **(NEXT_LIST_PAGE if page else {})}, dont_filter=True)

    def parse(self, response: Response, **kwargs: Any) -> Any:
        try:
            result = json.loads(response.text)["result"]
            records = result["records"] or []
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.warning("not an Epoint list answer at %s: %s", response.url, exc)
            self.crawler.stats.inc_value("lists/unreadable")
            return
        urls = [self.url(str(record.get("linkurl", ""))) for record in records]
        yield from self.detail_requests(urls, per_url=[{"fields": record_fields(record)} for record in records])
        meta = response.meta
        rows = self.options.rows
        more = (meta["page"] + 1) * rows < as_count(result.get("totalcount"))
        if self.walk_continues(urls, more and meta["page"] + 1 < self.options.max_pages,
                               meta["page"] + 1):
            yield self.api_request(meta["category"], meta["page"] + 1, meta["term"])

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        yield self.page_item(response, fields=response.meta.get("fields"))
