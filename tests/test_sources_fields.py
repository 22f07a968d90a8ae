"""Procurement fields on the real CCGP detail pages (read from ../shared), processes linking
notices of one project, attachment text by format, and marketplace listing fields."""

from __future__ import annotations

import io
import logging
from functools import partial
from pathlib import Path

import docx
import openpyxl
import pytest
from parsel import Selector

from crawlers.spiders.ccgp import CcgpSpider, channel_fields
from crawlers.spiders.epoint import record_fields
from crawlers.spiders.marketplace import listing_fields
from extract import extract_page
from extract.attachments import AttachmentError, attachment_text, save_attachments, sniff_format
from extract.fields import money, parse_procurement_fields, process_id
from index.snapshots import write_snapshot
from tests.conftest import DEMO_WEB, REAL_CORPUS, needs
from tests.crawl_mirror import minimal_pdf

CCGP = REAL_CORPUS / "procurement" / "ccgp"
MCA = CCGP / "detail_mca"


def fields_of(path: Path, url: str = "https://www.ccgp.gov.cn/cggg/x.htm") -> dict:
    return extract_page(path.read_bytes(), url, selectors=CcgpSpider.selectors).fields


@needs(MCA / "ccgp_zygg_zbgg_pumch_jianyanke_pkg3_20260929.html")
def test_award_notice_fields_field_by_field() -> None:
    fields = fields_of(MCA / "ccgp_zygg_zbgg_pumch_jianyanke_pkg3_20260929.html")
    assert fields["project_no"] == "0701-264106070107"
    assert fields["project_title"] == "中国医学科学院北京协和医院检验科设备购置项目（2）"
    assert fields["buyer"] == "中国医学科学院北京协和医院"
    assert fields["agency"] == "中技国际招标有限公司"
    assert fields["region"] == "北京市"
    assert fields["category"] == "货物/设备/医疗设备/临床检验设备"
    assert fields["notice_type"] == "award"
    assert fields["date_published"] == "2026-09-29T09:22"
    assert fields["award_value"] == {"amount": 1_820_000.0, "currency": "CNY"}
    assert fields["suppliers"] == ["北京若华医疗器械有限公司"]
    assert fields["items"][0]["brand"].startswith("美国BD") and fields["items"][0]["supplier"] == "北京若华医疗器械有限公司"
    assert fields["summary"]["评审专家名单"].startswith("王东黎")


@needs(MCA / "ccgp_dfgg_zbgg_hebei_cangzhou_20260928.html")
def test_hebei_template_award_with_goods_table() -> None:
    fields = fields_of(MCA / "ccgp_dfgg_zbgg_hebei_cangzhou_20260928.html")
    assert fields["notice_type"] == "award"  # 公开招标中标公告 is an award, not a tender
    assert fields["project_no"] == "ZHZB2026404" and fields["buyer"] == "沧州市中心医院"
    assert fields["suppliers"] == ["吉荣家具有限公司"]
    assert fields["items"][0] == {"supplier": "吉荣家具有限公司", "name": "病房护理设备设施", "brand": "吉荣",
                                  "model": "详见中标公示附件", "quantity": "一批", "unit_price": "2569303.17",
                                  "award": "2569303.17"}


@needs(MCA / "ccgp_dfgg_gzgg_beijing_fengsheng_06pkg_20260924.html")
def test_correction_notice_dates() -> None:
    fields = fields_of(MCA / "ccgp_dfgg_gzgg_beijing_fengsheng_06pkg_20260924.html")
    assert fields["notice_type"] == "tenderAmendment"
    assert fields["first_published"] == "2026-09-07" and fields["amendment_date"] == "2026-09-24"
    assert fields["project_no"] == "11010226210200025327-XM001"


@needs(CCGP / "detail" / "ccgp_dfgg_zbgg_shenzhen_20250527_aiting.html")
def test_browser_saved_page_with_bot_scripts() -> None:
    fields = fields_of(CCGP / "detail" / "ccgp_dfgg_zbgg_shenzhen_20250527_aiting.html")
    assert fields["project_no"] == "LHACG2025000057" and fields["suppliers"] == ["深圳市金龙空调电器有限公司"]


def test_notices_of_one_project_share_a_process_id() -> None:
    tender = parse_procurement_fields("项目编号：ABC-2026-01\n采购人：某市公安局\n预算金额：120万元", "某市公安局算力采购公开招标公告")
    award = parse_procurement_fields("项目编号： abc-2026-01 \n采购人：某市公安局\n中标金额：118万元", "某市公安局算力采购中标公告")
    other = parse_procurement_fields("项目编号：ABC-2026-01\n采购人：另一单位", "另一单位采购公告")
    assert tender.process_id == award.process_id != other.process_id
    assert (tender.notice_type, award.notice_type) == ("tender", "award")
    assert tender.budget == {"amount": 1_200_000.0, "currency": "CNY"}
    assert process_id(None, "x") is None


def test_money_and_channel() -> None:
    assert money("￥256.930317 万元（人民币）") == {"amount": 2_569_303.17, "currency": "CNY"}
    assert money("USD 12,000") == {"amount": 12_000.0, "currency": "USD"}
    assert channel_fields("https://www.ccgp.gov.cn/cggg/dfgg/zzgg/202609/t20260924_27401689.htm") == {
        "scope": "local", "channel": "终止公告"}


def _docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "GPU", "H100 x 8"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["货物名称", "数量"])
    book.active.append(["NVIDIA A100 服务器", 4])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_attachment_formats_are_sniffed_and_read() -> None:
    assert attachment_text(minimal_pdf("Azure OpenAI tokens for the bureau"))[1] == "Azure OpenAI tokens for the bureau"
    kind, text = attachment_text(_docx("技术要求：部署在境外云平台"), "a.bin")
    assert kind == "docx" and "境外云平台" in text and "H100 x 8" in text
    kind, text = attachment_text(_xlsx(), "list.xlsx")
    assert kind == "xlsx" and "NVIDIA A100 服务器 | 4" in text
    assert sniff_format(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "x.xls") == "xls"


@pytest.mark.parametrize("body", [b"%PDF-1.4\n garbage", b"PK\x03\x04 not a zip", b"hello", b""])
def test_malformed_attachments_raise_a_clear_error(body: bytes) -> None:
    with pytest.raises(AttachmentError, match="malformed|unsupported|no text"):
        attachment_text(body, "x.pdf")


def test_save_attachments_keeps_failures_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = [{"url": "http://h/a", "name": "a.pdf", "body": minimal_pdf("GPU rental")},
           {"url": "http://h/b", "name": "b.doc", "body": b"%PDF-broken"},
           {"url": "http://h/c", "name": "c.pdf", "error": "download exceeded 25 MB"}]
    with caplog.at_level(logging.WARNING):
        saved = save_attachments(raw, partial(write_snapshot, tmp_path))
    assert [s.text for s in saved] == ["GPU rental", "", ""]
    assert saved[1].error.startswith("malformed pdf") and "b.doc" in caplog.text
    assert saved[2].record() == {"url": "http://h/c", "name": "c.pdf", "error": "download exceeded 25 MB"}
    assert (tmp_path / saved[0].sha256[:2] / f"{saved[0].sha256}.bin").read_bytes() == raw[0]["body"]


def test_marketplace_listing_fields_from_the_demo_listing() -> None:
    page = Selector(text=(DEMO_WEB / "marketplace/apps/dahua-apac.dahua-cloudvms-vsaas.html").read_text(encoding="utf-8"))
    fields = listing_fields(page)
    assert fields["offer"] == "Dahua CloudVMS: Video Surveillance as a Service"
    assert fields["publisher"] == "Dahua Technology Asia Pacific Pte. Ltd."
    assert fields["offer_id"] == "dahua-apac.dahua-cloudvms-vsaas"
    assert fields["deployable_on"] == ["Azure Kubernetes Service", "Azure Virtual Machines", "Azure Blob Storage"]
    assert "Southeast Asia (Singapore)" in fields["regions"] and "East Asia (Hong Kong SAR)" in fields["regions"]
    assert [p["plan"] for p in fields["plans"]] == ["Starter", "Business", "Enterprise AI"]


def test_epoint_record_fields() -> None:
    record = {"titlenew": "x", "categoryname": "招标公告/资审公告", "zhuanzai": "苏州市", "infodateformat": "2026-07-06",
              "infoid": "5951fba5", "linkurl": "/jyxx/1.html"}
    assert record_fields(record) == {"notice_category": "招标公告/资审公告", "region": "苏州市",
                                     "date_published": "2026-07-06", "portal_id": "5951fba5"}
