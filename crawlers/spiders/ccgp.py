"""China Government Procurement Network (www.ccgp.gov.cn) channel lists and notices.

List pages: ``ul.c_list_bid li a`` to detail pages ``/cggg/{zygg|dfgg}/{type}/{YYYYMM}/t{date}_{id}.htm``;
pagination from the page's ``Pager({size:N, ...})`` call (index.htm, index_1.htm, ...).
Details come in two templates (vF_ and vT_ classes); the 公告概要 table and the body are kept.
"""

from __future__ import annotations

import re
from typing import Any

from scrapy.http import Response

from crawlers.spiders.base import SourceSpider

_PAGER = re.compile(r"Pager\(\{[^}]*size\s*:\s*(\d+)[^}]*current\s*:\s*(\d+)")


class CcgpSpider(SourceSpider):
    name = "ccgp"
    selectors = {
        "title": "div.vF_detail_header h2, div.vT_detail_header h2, .vT-srch-result h2",
        "date": "#pubTime",
        "body": "div.table, div.vF_detail_content, div.vT_detail_content",
    }

    def parse(self, response: Response, **kwargs: Any) -> Any:
        for href in response.css("ul.c_list_bid li > a::attr(href), ul.c_list_tat li > a::attr(href)").getall():
            request = self.detail_request(response.urljoin(href))
            if request is not None:
                yield request
        pager = _PAGER.search(response.text)
        if pager and int(pager.group(2)) == 0:
            for page in range(1, int(pager.group(1))):
                yield self.list_request(response.urljoin(f"index_{page}.htm"))
