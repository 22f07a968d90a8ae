"""RSS and Atom feeds (relay sellers' announcements) are extracted as text, entry by entry."""

from __future__ import annotations

import codecs

import pytest

import extract.feed
from extract import UnusableContent, extract_page
from extract.feed import clean_fragment, feed_document, looks_like_feed

RELAY_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/xsl" href="https://feeds.example-relay.cn/rss.xsl"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
<title>星桥 API 中转站公告</title>
<link>https://feeds.example-relay.cn/</link>
<description>星桥中转站的官方公告</description>
<language>zh-cn</language>
<lastBuildDate>Tue, 03 Mar 2026 12:00:00 +0800</lastBuildDate>
<item>
<title>GPT-4o 与 Claude 通道价格下调</title>
<link>https://feeds.example-relay.cn/notice/101</link>
<pubDate>Mon, 02 Mar 2026 07:30:00 +0800</pubDate>
<description><![CDATA[<p>即日起 GPT-4o 通道按官方价格的 3 折计费，Claude 通道 3.5 折，充值满 500 元赠送 10%。企业客户可开具发票，详询客服微信。</p>]]></description>
</item>
<item>
<title>新增 Gemini 2.5 Pro 直连线路</title>
<link>https://feeds.example-relay.cn/notice/100</link>
<pubDate>Fri, 27 Feb 2026 20:00:00 +0800</pubDate>
<description>国内直连，无需代理，稳定低延迟，兼容 OpenAI 接口，套餐包月 199 元起。</description>
</item>
</channel>
</rss>
""".encode()

RELAY_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>NorthGate Relay status and news</title>
  <id>urn:uuid:8a3c1c52-0d6f-4c55-9b0e-1f1c0b7c2d11</id>
  <updated>2026-03-04T09:00:00Z</updated>
  <link href="https://feeds.example-relay.cn/atom.xml" rel="self"/>
  <entry>
    <title>Claude Opus channel back online</title>
    <id>urn:uuid:1</id>
    <updated>2026-03-04T08:15:00+08:00</updated>
    <summary>The Claude Opus channel is restored after the upstream account rotation.</summary>
    <content type="html">&lt;p&gt;The Claude Opus channel is restored after the upstream account rotation. Top-up with
    Alipay or USDT; plans from 30 USD per month, buy now through our Telegram bot.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>New H100 batch endpoints</title>
    <id>urn:uuid:2</id>
    <updated>2026-03-01T10:00:00+08:00</updated>
    <summary type="text">Batch inference on dedicated H100 nodes, billed per million tokens &amp; no KYC.</summary>
  </entry>
</feed>
"""

GBK_RSS = """<?xml version="1.0" encoding="gbk"?>
<rss version="2.0">
<channel>
<title>云桥中转 通知</title>
<item>
<title>春节期间充值优惠</title>
<pubDate>Wed, 11 Feb 2026 09:00:00 +0800</pubDate>
<description>春节期间充值任意金额加赠 15%，所有模型通道正常服务，客服微信全天在线。</description>
</item>
</channel>
</rss>
""".encode("gbk")

HOSTILE_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
<title>风暴中转 公告</title>
<item>
<title>&lt;b&gt;限时&lt;/b&gt; 通道开放</title>
<description>&lt;p&gt;新用户注册即送 5 元额度，支持 GPT-4o 与 Claude 全系列模型。&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src="https://feeds.example-relay.cn/x.png" onerror="alert(2)"&gt;</description>
<content:encoded><![CDATA[<p onclick="alert(3)">新用户注册即送 5 元额度，支持 GPT-4o 与 Claude 全系列模型。</p>
<script>alert(1)</script><style>p { color: red }</style><img src="x" onerror="alert(2)">
<a href="javascript:alert(4)">点此领取</a>]]></content:encoded>
</item>
</channel>
</rss>
""".encode()

XHTML_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" lang="zh-CN">
<head><title>星桥中转 价格说明</title></head>
<body><h1>星桥中转 价格说明</h1>
<p>GPT-4o 通道按官方价格的 3 折计费，充值满 500 元赠送 10%，套餐包月 199 元起，详询客服微信。</p>
<p>所有通道国内直连，无需代理，企业客户可开具发票。</p>
</body></html>
""".encode()


def test_chinese_rss_feed_is_text_entry_by_entry() -> None:
    page = extract_page(RELAY_RSS, "https://feeds.example-relay.cn/rss.xml", "application/rss+xml; charset=utf-8")
    assert page.title == "星桥 API 中转站公告"
    for title in ("GPT-4o 与 Claude 通道价格下调", "新增 Gemini 2.5 Pro 直连线路"):
        assert title in page.text
    assert "充值满 500 元赠送 10%" in page.text and "套餐包月 199 元起" in page.text
    assert "<p>" not in page.text
    assert page.lang == "zh" and page.kind == "reseller-ad" and page.encoding == "utf-8"
    # The newest entry's day where it was posted (UTC+8), not the day in UTC, nor the rebuild date.
    assert page.date == "2026-03-02"


def test_atom_feed_is_read_by_its_root_element() -> None:
    page = extract_page(RELAY_ATOM, "https://feeds.example-relay.cn/atom.xml", "text/xml")
    assert page.title == "NorthGate Relay status and news"
    assert "Claude Opus channel back online" in page.text and "New H100 batch endpoints" in page.text
    assert "buy now through our Telegram bot" in page.text   # the entry's content, fuller than its summary
    assert "billed per million tokens & no KYC" in page.text  # a plain-text summary, unescaped once
    assert page.lang == "en" and page.kind == "reseller-ad" and page.date == "2026-03-04"


def test_gbk_feed_is_decoded_by_its_xml_declaration() -> None:
    page = extract_page(GBK_RSS, "https://feeds.example-relay.cn/gbk.xml", "text/xml")
    assert page.title == "云桥中转 通知"
    assert "春节期间充值优惠" in page.text and "春节期间充值任意金额加赠 15%" in page.text
    assert page.lang == "zh" and page.encoding == "gb18030" and page.date == "2026-02-11"


def feed_html(body: bytes) -> str:
    return feed_document(body)[0]


def test_nothing_in_a_feed_can_run() -> None:
    html = feed_html(HOSTILE_RSS).lower()
    for active in ("<script", "<style", "onerror", "onclick", "javascript:", "alert("):
        assert active not in html
    assert "&lt;b&gt;限时&lt;/b&gt; 通道开放" in html   # a title is text, escaped
    page = extract_page(HOSTILE_RSS, "https://feeds.example-relay.cn/rss.xml", "application/rss+xml")
    assert "新用户注册即送 5 元额度" in page.text and "<b>限时</b> 通道开放" in page.text
    assert "alert" not in page.text and "onerror" not in page.text and "color: red" not in page.text


def test_entry_html_is_cleaned_even_where_feedparser_would_not() -> None:
    cleaned = clean_fragment('<p onclick="x()">a<script>alert(1)</script><img src="y" onerror="alert(2)">'
                             '<a href="javascript:alert(3)">l</a></p><style>p {}</style><!-- c -->').lower()
    assert "a" in cleaned and not any(bad in cleaned for bad in ("script", "onclick", "onerror", "javascript", "style"))
    assert clean_fragment("<!-- only a comment -->") == "" and clean_fragment("  ") == ""


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel></channel></rss>',
    b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>',
])
def test_feed_without_entries_is_refused(body: bytes) -> None:
    with pytest.raises(UnusableContent, match="feed with no entries"):
        extract_page(body, "https://feeds.example-relay.cn/empty.xml", "application/rss+xml")


def test_broken_feed_without_entries_names_the_parser_error() -> None:
    with pytest.raises(UnusableContent, match=r"unreadable feed \(\w+"):
        extract_page(b'<?xml version="1.0"?><rss version="2.0"><channel><<<>>>', "", "application/rss+xml")


def test_malformed_feed_with_entries_is_still_used() -> None:
    # A bare "&", an unclosed <br>, and the feed cut off inside its second item.
    body = ("<rss version=\"2.0\"><channel><title>断线中转</title><item><title>维护通知 & 补偿</title>"
            "<description>今晚 23:00 至次日 01:00 全部通道维护<br>期间充值顺延，请联系客服微信。</description>"
            "</item><item><title").encode()
    assert feed_html(body).count("<article") == 1
    page = extract_page(body, "https://feeds.example-relay.cn/broken.xml")
    assert "维护通知 & 补偿" in page.text and "全部通道维护" in page.text and "期间充值顺延" in page.text


def test_entries_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract.feed, "MAX_ENTRIES", 2)
    items = "".join(f"<item><title>第{n}号公告</title><description>第{n}号公告：通道扩容，新增节点若干。</description></item>"
                    for n in range(1, 6))
    html = feed_html(f"<rss version=\"2.0\"><channel><title>T</title>{items}</channel></rss>".encode())
    assert "第2号公告" in html and "第3号公告" not in html


def test_xhtml_page_with_an_xml_declaration_is_a_page_not_a_feed() -> None:
    assert not looks_like_feed(XHTML_PAGE, "application/xhtml+xml")
    page = extract_page(XHTML_PAGE, "https://www.example-relay.cn/pricing.html", "application/xhtml+xml")
    assert page.title == "星桥中转 价格说明" and "充值满 500 元赠送 10%" in page.text
    assert page.lang == "zh" and page.kind == "reseller-ad"


@pytest.mark.parametrize(("body", "content_type", "feed"), [
    (codecs.BOM_UTF8 + b'\n  <?xml version="1.0"?>\n<rss version="2.0">', None, True),
    (b'<?xml version="1.0"?><!-- generated --><?xml-stylesheet href="s.xsl"?><feed xmlns="x">', "text/html", True),
    (b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">', None, True),
    (b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "x.dtd"><rss version="0.91">', None, True),
    (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]><rss>', None, True),
    ('<?xml version="1.0" encoding="utf-16"?><rss version="2.0">'.encode("utf-16"), None, True),
    (b"<channel><item>", "application/rss+xml; charset=utf-8", True),      # the server says so
    (b"<!DOCTYPE html><html><body>404</body></html>", "application/atom+xml", False),
    (b"<html><head><title>rss</title></head></html>", "text/html", False),
    (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">', "text/xml", False),
    (b" " * 2000 + b"<rss>", None, False),   # only the first kilobyte is read
    (b"<?" * 5000, None, False),
    (b"", None, False),
])
def test_looks_like_feed(body: bytes, content_type: str | None, feed: bool) -> None:
    assert looks_like_feed(body, content_type) is feed
