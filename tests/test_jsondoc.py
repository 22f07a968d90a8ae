"""Notices served as JSON: read through a spider's JSON paths, hostile answers refused cleanly."""

from __future__ import annotations

import json

import pytest

from crawlers.spiders.ggzy import GgzySpider
from crawlers.spiders.zcy import ZcySpider, record_fields
from extract import UnusableContent, extract_page
from extract.jsondoc import date_text, value_at

PATHS = ZcySpider.selectors


def _detail(**data: object) -> bytes:
    return json.dumps({"success": True, "result": {"data": data}}, ensure_ascii=False).encode()


def test_title_date_and_html_body_are_read_through_the_paths() -> None:
    body = _detail(title="某局云服务采购公告", publishDate=1796351400000,
                   content="<p>项目编号：ZC-2026-01</p><p>采购人：某局</p><p>预算金额：120万元</p>")
    page = extract_page(body, "https://x.example/portal/detail?articleId=1", "application/json", PATHS)
    assert page.title == "某局云服务采购公告" and page.date == "2026-12-04"
    assert "项目编号：ZC-2026-01" in page.text and "<p>" not in page.text


@pytest.mark.parametrize("body", [b"<html>not json</html>", b"{\"result\": {\"data\": {}}}",
                                  _detail(title={"nested": 1}, content=["a", "b"]), b"[1, 2, 3]"])
def test_unusable_json_documents_are_refused(body: bytes) -> None:
    with pytest.raises(UnusableContent):
        extract_page(body, "https://x.example/d", "application/json", PATHS)


def test_script_in_the_notice_html_is_not_text() -> None:
    body = _detail(title="<b>标题</b>", content="<p>项目编号：ZC-2026-02。采购人：某市某局。预算金额：80万元。采购需求："
                   "政务云资源租赁服务一年，详见采购文件。</p><script>alert(1)</script>")
    page = extract_page(body, "https://x.example/d", "application/json", PATHS)
    assert page.title == "<b>标题</b>" and "alert" not in page.text


def test_dates_and_paths() -> None:
    assert date_text(1796351400000) == "2026-12-04 10:30" and date_text(1796351400) == "2026-12-04 10:30"
    assert date_text(10 ** 30) == "" and date_text(True) == "" and date_text("2026-01-02") == "2026-01-02"
    assert value_at({"a": {"b": 1}}, "json:a.b") == 1 and value_at({"a": [1]}, "json:a.b") is None


def test_zcy_record_fields_keep_what_the_list_says() -> None:
    record = {"articleId": "Ab+/==", "districtName": "上海市浦东新区", "pathName": "公开招标公告",
              "procurementMethod": "公开招标", "publishDate": 1796351400000, "author": None}
    assert record_fields(record) == {"region": "上海市浦东新区", "notice_category": "公开招标公告",
                                     "procurement_method": "公开招标", "portal_id": "Ab+/==",
                                     "date_published": "2026-12-04"}


class _Answer:
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.mark.parametrize(("answer", "blocked"), [
    ('{"code": 829, "data": {"captchaToken": "t"}}', True), ('{"code": 800, "msg": "眼睛累了"}', True),
    ('{"code": 200, "data": {"records": []}}', False), ("[829]", False), ("not json", False),
    ('{"code": "829"}', False)])
def test_ggzy_block_codes(answer: str, blocked: bool) -> None:
    assert (GgzySpider.api_block_reason(GgzySpider.__new__(GgzySpider), _Answer(answer)) is not None) is blocked  # type: ignore[arg-type]
