"""全国公共资源交易平台 (www.ggzy.gov.cn): the national platform every province's public-resource
trading centres publish to (with the central-SOE and ministry platforms), so one spider reads them all.

List: ``POST /information/pubTradingInfo/getTradList``, a form: ``DEAL_TIME`` ``06`` with
``TIMEBEGIN``/``TIMEEND`` (YYYY-MM-DD), ``DEAL_CLASSIFY`` (``02`` government procurement, ``00``
all), ``DEAL_STAGE`` (``0200``: every stage of it), ``SOURCE_TYPE`` (``1`` provincial platforms),
``DEAL_PROVINCE`` (``0`` all), ``PAGENUMBER`` (from 1; 20 rows a page) and ``FINDTXT`` (a keyword).
The answer: ``{"code": 200, "data": {"records": [{"id", "title", "publishTime", "provinceText",
"businessTypeText", "informationTypeText", "transactionSourcesPlatformText", "tenderProjectCode",
"url"}], "total", "pages", "current"}}``; ``code`` 829 asks for a captcha and 800 says "too
frequent": block answers, which back the source off like a block page. ``total`` stops at 1000, so
the window is kept short (``days``). Detail: a record's ``url`` is a frame page,
``/information/deal/html/a/{province}/{stage}/{date}/{id}.html``; the notice is the same path under
``/html/b/``: title ``h4.h4_o``, time and source ``p.p_o``, body ``#mycontent``.

The shapes were learned from public crawlers' documented requests and answers (see the README).
Options: ``classify``, ``stage``, ``source_type``, ``days`` (list window), ``max_pages``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import scrapy
from pydantic import Field
from scrapy.http import Response

from crawlers.spiders.base import NEXT_LIST_PAGE, SourceSpider, SpiderOptions, as_count

LIST_API = "/information/pubTradingInfo/getTradList"
BLOCK_CODES = {829: "验证码 (the list API asks for a captcha, code 829)",
               800: "操作过于频繁 (the list API says too frequent, code 800)"}
RECORD_FIELDS = {"provinceText": "region", "publishTime": "date_published", "informationTypeText": "notice_category",
                 "businessTypeText": "business_type", "transactionSourcesPlatformText": "platform",
                 "tenderProjectCode": "project_no", "id": "portal_id"}


def record_fields(record: dict[str, Any]) -> dict[str, str]:
    """What the platform's list says about a notice, under our field names."""
    return {ours: str(record[theirs]).strip() for theirs, ours in RECORD_FIELDS.items() if record.get(theirs)}


class GgzyOptions(SpiderOptions):
    classify: str = "02"          # DEAL_CLASSIFY
    stage: str = "0200"           # DEAL_STAGE
    source_type: str = "1"        # SOURCE_TYPE
    days: int | None = Field(None, ge=1)   # the list window; None: the search's days, else 3
    max_pages: int = Field(20, ge=1)


class GgzySpider(SourceSpider):
    name = "ggzy"
    Options = GgzyOptions
    options: GgzyOptions
    selectors = {"title": "h4.h4_o", "date": "p.p_o", "body": "#mycontent"}

    async def start(self) -> Any:
        yield self.list_request_for("", page=1)
        for request in self.search_requests():
            yield request

    def search_requests(self) -> Iterable[scrapy.Request]:
        return (self.list_request_for(term, page=1) for term in self.search_terms())

    def form(self, term: str, page: int) -> dict[str, str]:
        options = self.options
        days = options.days or (self.source.search.days if self.source.search else 3)
        today = datetime.now(UTC).date()
        begin = str(today - timedelta(days=days))
        return {"TIMEBEGIN_SHOW": begin, "TIMEEND_SHOW": str(today), "TIMEBEGIN": begin, "TIMEEND": str(today),
                "DEAL_TIME": "06", "SOURCE_TYPE": options.source_type,
                "DEAL_CLASSIFY": options.classify,
                "DEAL_STAGE": options.stage, "DEAL_PROVINCE": "0", "DEAL_CITY": "0",
                "DEAL_PLATFORM": "0", "BID_PLATFORM": "0", "DEAL_TRADE": "0", "isShowAll": "1",
                "PAGENUMBER": str(page), "FINDTXT": term}

    def list_request_for(self, term: str, page: int) -> scrapy.Request:
        return scrapy.FormRequest(self.url(LIST_API), formdata=self.form(term, page), callback=self.parse,
                                  meta={"term": term, "page": page, **(NEXT_LIST_PAGE if page > 1 else {})},
                                  dont_filter=True)

    def api_block_reason(self, response: Response) -> str | None:
        try:
            code = json.loads(response.text).get("code")
        except (ValueError, AttributeError):
            return None
        return BLOCK_CODES.get(code) if isinstance(code, int) else None

    def parse(self, response: Response, **kwargs: Any) -> Any:
        try:
            data = json.loads(response.text)["data"]
            records = [r for r in data["records"] or [] if isinstance(r, dict) and r.get("url")]
        except (ValueError, KeyError, TypeError) as exc:
            self.logger.warning("not a getTradList answer at %s: %s", response.url, exc)
            self.crawler.stats.inc_value("lists/unreadable")
            return
        urls = [self.notice_url(str(record["url"])) for record in records]
        yield from self.detail_requests(urls, per_url=[{"fields": record_fields(r)} for r in records])
        page = response.meta["page"]
        more = page < min(as_count(data.get("pages")), self.options.max_pages)
        if self.walk_continues(urls, more, page):
            yield self.list_request_for(response.meta["term"], page + 1)

    def notice_url(self, frame_url: str) -> str:
        """The notice itself: the frame page's path under ``/html/b/`` (moved onto a mirror)."""
        return self.on_mirror(urljoin(self.base_url + "/", frame_url.replace("/html/a/", "/html/b/", 1)))

    def parse_page(self, response: Response, **kwargs: Any) -> Any:
        yield self.page_item(response, fields=response.meta.get("fields"))

