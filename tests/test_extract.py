"""Extraction on real CCGP pages (read from ../shared) and on pages written here."""

from __future__ import annotations

import pytest

from crawlers.spiders.ccgp import CcgpSpider
from extract import UnusableContent, extract_page
from extract.blocks import block_reason
from extract.fields import parse_procurement_fields
from extract.kind import EVIDENCE_KINDS, classify_kind
from extract.page import page_title
from tests.conftest import REAL_CORPUS, needs

CCGP_DETAIL = REAL_CORPUS / "procurement/ccgp/detail/ccgp_qtgg_dyly_20260703_26871783_compass.html"


@needs(CCGP_DETAIL)
def test_real_ccgp_detail_with_site_selectors() -> None:
    page = extract_page(CCGP_DETAIL.read_bytes(), "https://www.ccgp.gov.cn/cggg/zygg/qtgg/202607/t20260703_26871783.htm",
                        selectors=CcgpSpider.selectors)
    assert page.title == "中国科学院金属研究所球差原位透射电镜采购项目单一来源采购公告"
    assert page.date == "2026-07-03"
    assert page.lang == "zh"
    assert page.kind == "procurement-notice"
    assert "球差原位透射电镜" in page.text and "公告概要" not in page.title
    assert page.fields["project_no"] == "OITC-G260610702"
    assert page.fields["buyer"].startswith("中国科学院金属研究所")
    budget = page.fields["amounts"][0]
    assert budget["amount"] == pytest.approx(33_000_000) and budget["currency"] == "CNY"
    assert page.fields["notice_type"] == "tender"


def test_english_rfq_fields() -> None:
    fields = parse_procurement_fields("Purchaser: X\nbudget: US$ 280,000 for Azure OpenAI tokens", "RFQ")
    assert fields.amounts[0].amount == 280_000 and fields.amounts[0].currency == "USD"


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><title>访问验证</title></head><body><p>您的访问过于频繁，请输入验证码后继续。</p></body></html>",
        "<html><body><noscript>请开启JavaScript并刷新该页</noscript><p>请开启JavaScript后访问本站点内容。谢谢合作!</p></body></html>",
        "<html><head><title>Just a moment...</title></head><body><p>Checking your browser before accessing the site.</p>"
        "</body></html>",
        "<html><body><div id='app'></div></body></html>",
    ],
)
def test_block_pages_are_not_content(html: str) -> None:
    with pytest.raises(UnusableContent):
        extract_page(html.encode("utf-8"), "http://127.0.0.1/x")


def test_a_shop_that_sells_phone_verification_is_content_not_a_captcha_page() -> None:
    """A page is a block page by its shape (little text and a challenge), not by a word: an account
    shop's opening that mentions 验证码 because verification is what it sells is content."""
    shop = ("<html><head><title>海外手机号接码 · ChatGPT 成品号</title></head><body><h1>成品号与接码服务</h1>"
            "<p>提供美国、英国手机号接收短信验证码，用于注册 ChatGPT、Claude 账号，下单后自动发货。</p>"
            "<p>成品号已过手机验证，首登包换，支持支付宝、微信付款，售后七天内有效，封号不退款。</p>"
            "<p>常见问题：验证码收不到怎么办？请在五分钟内刷新，仍未收到可联系客服换号。</p>"
            "<p>价格：美国号接码 3 元一次，英国号 4 元一次；成品号 Plus 独享 158 元每月，拼车 39 元每月。</p></body></html>")
    page = extract_page(shop.encode("utf-8"), "http://127.0.0.1/shop")
    assert "成品号" in page.text


def test_a_challenge_widget_on_a_short_page_is_a_block() -> None:
    html = ("<html><head><title>请稍候</title></head><body><p>正在检查您的浏览器环境。</p>"
            "<div id='nc_1_wrapper'></div></body></html>")
    with pytest.raises(UnusableContent, match="block page title|challenge"):
        extract_page(html.encode("utf-8"), "http://127.0.0.1/x")
    assert block_reason("Loading the store", "Shop", "<div class='g-recaptcha'></div>") == "challenge markup (g-recaptcha)"


def test_long_notice_mentioning_captcha_is_content() -> None:
    body = "投标人登录系统时需输入验证码。" + "本项目为政府采购项目，采购人为某市财政局，预算金额100万元。" * 60
    assert block_reason(body) is None


def test_binary_served_as_html_is_rejected() -> None:
    with pytest.raises(UnusableContent, match="binary"):
        extract_page(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "http://127.0.0.1/a.htm")


@pytest.mark.parametrize(("text", "url", "kind"), [
    # Reporting: an interview and an insider's figures, in a weekly's page.
    ("国内某算力公司负责人告诉本刊记者，多位受访者认为海外机房只是过渡。业内人士透露，整机月租约十万元。",
     "https://www.example-weekly.cn/p/123", "news-commentary"),
    # Analysis: recommendations to policymakers about the loophole, under /research/.
    ("Our review of procurement notices finds a loophole. Recommendations: policymakers should require "
     "cloud providers to verify resellers' customers. Contact sales for our data.",
     "https://think.example.org/research/cloud-gap", "news-commentary"),
    # A broker's one-page pitch: no single strong seller cue, several weak ones.
    ("How it works: we hold the cloud account under our Hong Kong company. Who we serve: mainland teams. "
     "Pricing on request.", "https://broker.example.hk/access", "vendor-marketing"),
    # A job ad names the same clouds but offers nothing.
    ("岗位职责：负责AWS、Azure云资源运维。任职要求：三年以上经验。薪资面议，欢迎咨询客服。",
     "https://jobs.example.cn/job/1", "other"),
    # An article about marketplace listings says "marketplace" as often as a listing does.
    ("Video software from two blacklisted vendors was listed in the AWS Marketplace and the Azure Marketplace "
     "this month, a review found. The Marketplace pages name them as sellers, analysts said. 6 min read",
     "https://www.example-wire.com/2025/06/18/marketplaces/", "news-commentary"),
    # A self-media (WeChat public account) article talks with its readers.
    ("原创 老周说安防 海康把平台做成AMI放上AWS Marketplace，出海是刚需。你怎么看？欢迎留言。阅读原文",
     "https://mp.weixin.qq.com/s/abc", "news-commentary"),
    # An English invitation to quote is a notice, whatever it buys.
    ("Invitation to Quote: enterprise AI subscription. Scope of work: Azure OpenAI. Supplier requirements: "
     "a Microsoft partner. Quotations shall be sent by the closing date.", "https://group.example.com/en/x",
     "procurement-notice"),
])
def test_kind_reads_the_genre_not_the_topic(text: str, url: str, kind: str) -> None:
    assert classify_kind(text, url) == kind


@needs(REAL_CORPUS / "chinese_pages" / "gne")
def test_real_chinese_news_pages_are_news() -> None:
    """GNE's news pages (people.cn, provincial and university news) must never count as primary sources."""
    for path in sorted((REAL_CORPUS / "chinese_pages" / "gne").glob("*.html")):
        page = extract_page(path.read_bytes(), "")
        assert page.kind not in EVIDENCE_KINDS, path.name


@pytest.mark.parametrize(("extracted", "html_title", "title"), [
    # A portal's logo heading taken for the title: the notice's own title is before it.
    ("广东省政府采购网", "某边检站智能查验系统升级项目竞争性磋商公告 - 广东省政府采购网", "某边检站智能查验系统升级项目竞争性磋商公告"),
    ("湖南省政府采购网", "某县公安局服务器采购项目询价公告_湖南省政府采购网", "某县公安局服务器采购项目询价公告"),
    # The page's own title, even when the site's name is longer.
    ("Vigilo VMS Cloud", "Vigilo VMS Cloud | Microsoft Azure Marketplace", "Vigilo VMS Cloud"),
    ("", "Only a title tag", "Only a title tag"),
])
def testpage_title_is_the_page_not_the_site(extracted: str, html_title: str, title: str) -> None:
    assert page_title(extracted, html_title) == title


def test_latin_kind_cues_match_whole_words() -> None:
    """An article about "tenders" and "procurement notices" is not a tender."""
    article = "What Chinese tenders reveal. I read 1,400 procurement notices. Methodology: hand-coded. 11 min read"
    assert classify_kind(article, "https://blog.example/p/1") == "news-commentary"
    assert classify_kind("Invitation to bid. Tender no. 17. Purchaser: X. Bid submission deadline for offers.",
                         "https://example.cn/notice") == "procurement-notice"


def test_chinese_kind_cues_read_traditional_characters() -> None:
    """A Hong Kong paper's report is news in Traditional characters too."""
    report = "本報記者報道：多位受訪者透露，業內人士認為相關公司未予回應。"
    assert classify_kind(report, "https://hk.example/a/1") == "news-commentary"


def test_a_company_newsroom_is_the_company_speaking() -> None:
    """A vendor's own announcement, dated path and all, is its marketing, not news about it."""
    release = "Hikvision today announced HikCentral Cloud Edition, deployable on Azure. Contact us for products."
    assert classify_kind(release, "https://www.vendor.example/en/newsroom/latest-news/2025/cloud/") == "vendor-marketing"
