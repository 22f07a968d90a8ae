"""Seller discovery end to end on loopback: a server answering in SearXNG's JSON shape, and two
"sites" on their own loopback addresses (any 127.x address is this machine): a relay shop selling
ChatGPT/Claude API access to users in China, and a host that answers with a block page.

Two crawls of the discovery source. The first searches, queues both hosts (one row each, however
many results name them), crawls the shop within its daily page cap, and backs the blocking host
off. The alert the shop's relay page raises puts the shop on the re-crawl schedule; the second
crawl re-crawls it (stopping at the daily cap) and leaves the blocking host alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crawlers.discovery import host_key, page_url, read_searxng, searxng_query
from ground.config import DiscoverySettings
from index.store import Alert, CrawlRun, DiscoveredHost, Document, Store
from tests.crawl_mirror import Mirror, documents, loophole, serve_mirror

SOURCES = """
sources:
  - {id: discovery-test, kind: reseller, spider: discovery, base_url: 'http://127.0.0.1:8888',
     search: {terms: [ChatGPT API 中转, Claude API 中转站]}, allow_private: true}
"""
RELAY = """<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">
<title>智联API - ChatGPT / Claude API 中转站，国内直连，支付宝充值</title></head>
<body><header><nav>首页 | 价格 | 文档 | 常见问题 | 联系客服</nav></header>
<main><h1>OpenAI、Claude 官方 API 中转服务</h1>
<p>面向中国大陆用户：无需翻墙、无需海外信用卡、无需实名，国内直连调用 GPT-4o、o1、Claude 3.5 Sonnet 官方接口，
一个 Key 调用全部模型，兼容 OpenAI 接口格式。</p>
<p>我们以香港公司名义在 OpenAI 和 Anthropic 开通企业账号并代付账单，您的身份不会提供给上游平台。</p>
<p>支持支付宝、微信支付充值，按量计费，充值 100 元起，企业客户可签合同开发票。</p>
<p>立即注册，赠送 5 元体验额度。客服微信：zhilian-api</p></main><footer>© 2026 智联API</footer></body></html>"""
PRICING = """<html><head><meta charset="utf-8"><title>价格 - 智联API</title></head><body><h1>模型价格</h1>
<table><tr><th>模型</th><th>输入</th><th>输出</th></tr><tr><td>GPT-4o</td><td>￥0.02/千tokens</td><td>￥0.06/千tokens</td></tr>
<tr><td>Claude 3.5 Sonnet</td><td>￥0.025/千tokens</td><td>￥0.1/千tokens</td></tr></table>
<p>余额永不过期，支付宝、微信支付即时到账，充值满 1000 元九五折。</p></body></html>"""
FAQ = """<html><head><meta charset="utf-8"><title>常见问题 - 智联API</title></head><body><h1>常见问题</h1>
<p>问：需要自己的海外账号吗？答：不需要，注册本站账号即可获得 API Key，按量扣费。</p>
<p>问：支持哪些客户端？答：所有兼容 OpenAI 接口的客户端与 SDK，把 base_url 换成本站地址即可。</p></body></html>"""
BLOCK = ("<html><head><meta charset='utf-8'><title>访问验证</title></head><body><p>您的访问过于频繁，"
         "请输入验证码后继续。</p></body></html>")
CAP = 4  # pages per host per day: three on the first visit, one left for the re-crawl


class SearxNG:
    """Answers ``/search?q=...&format=json`` as SearXNG does; keeps every query it was asked."""

    def __init__(self, shop: str, blocky: str) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.results = {"ChatGPT API 中转": [f"{shop}/relay.html", f"{shop}/pricing.html", f"{blocky}/buy.html"],
                        "Claude API 中转站": [f"{shop}/faq.html", f"{shop}/relay.html#top", f"{blocky}/more.html"]}

    def __call__(self, query: dict[str, list[str]], _body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.queries.append(query)
        term = query["q"][0]
        results = [self.result(url, position) for position, url in enumerate(self.results.get(term, []), start=1)]
        answer = {"query": term, "number_of_results": 0, "results": results, "answers": [], "corrections": [],
                  "infoboxes": [], "suggestions": [f"{term} 推荐"],
                  "unresponsive_engines": [["google", "CAPTCHA"]] if term.startswith("Claude") else []}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer, ensure_ascii=False).encode()

    @staticmethod
    def result(url: str, position: int) -> dict[str, Any]:
        scheme, rest = url.split("://", 1)
        netloc, _, path = rest.partition("/")
        return {"url": url, "title": f"结果 {position}", "content": "API 中转 国内直连", "engine": "bing",
                "parsed_url": [scheme, netloc, "/" + path, "", "", ""], "template": "default.html",
                "engines": ["bing", "duckduckgo"], "positions": [position, position + 1], "score": 2.0 / position,
                "category": "general", "publishedDate": None, "thumbnail": None}


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Mirror, Mirror, Mirror, SearxNG]]:
    shop = Mirror(files={"/relay.html": RELAY.encode(), "/pricing.html": PRICING.encode(), "/faq.html": FAQ.encode()})
    blocky = Mirror(files={"/buy.html": BLOCK.encode(), "/more.html": BLOCK.encode()})
    with serve_mirror(shop, "127.0.0.2") as shop, serve_mirror(blocky, "127.0.0.3") as blocky:
        searx = SearxNG(shop.base_url, blocky.base_url)
        with serve_mirror(Mirror(routes={"/search": searx})) as search:
            yield search, shop, blocky, searx


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, sites: tuple[Mirror, Mirror, Mirror, SearxNG]) -> Iterator[Any]:
    """The first crawl; then the alert on the relay page (made through the store if a redesigned
    detector scored it otherwise: this test is about what follows an alert); then the second crawl."""
    search, shop, blocky, _ = sites
    tmp = tmp_path_factory.mktemp("discovery")
    (tmp / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"sources_file": str(tmp / "sources.yaml"),
                                  "crawl": {"download_delay": 0, "block_backoff_minutes": 60},
                                  "discovery": {"max_pages_per_host_per_day": CAP, "recrawl_hours": 0}}))
    home = tmp / "home"
    first = loophole(["crawl", "discovery-test", "--base-url", search.base_url], home, config)
    assert first.returncode == 0, first.stderr[-3000:]
    after_first = _snapshot(home, shop, blocky)
    _ensure_alert(home, shop.base_url + "/relay.html")
    second = loophole(["crawl", "discovery-test", "--base-url", search.base_url], home, config)
    assert second.returncode == 0, second.stderr[-3000:]
    yield home, config, after_first, _snapshot(home, shop, blocky)


def _pages(mirror: Mirror) -> list[str]:
    return [target for target in mirror.requested() if target != "/robots.txt"]


def _snapshot(home: Path, shop: Mirror, blocky: Mirror) -> dict[str, Any]:
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    try:
        with store.session() as session:
            hosts = {row.host: row for row in session.scalars(select(DiscoveredHost))}
            run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
    finally:
        store.close()
    return {"hosts": hosts, "run": run, "shop": _pages(shop), "blocky": _pages(blocky)}


def _ensure_alert(home: Path, url: str) -> None:
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    try:
        with store.session() as session:
            doc = session.scalar(select(Document).where(Document.url == url))
            assert doc is not None, "the relay page was not stored"
            if session.scalar(select(Alert.id).where(Alert.doc_id == doc.id)) is None:
                session.add(Alert(doc_id=doc.id, pattern_id="reseller-intermediary", score=1.0,
                                  sentence="以香港公司名义在 OpenAI 和 Anthropic 开通企业账号并代付账单"))
    finally:
        store.close()


def test_results_are_queued_once_per_host(runs: Any, sites: tuple[Mirror, Mirror, Mirror, SearxNG]) -> None:
    _, _, first, _ = runs
    search, shop, blocky, searx = sites
    assert {host_key(shop.base_url), host_key(blocky.base_url)} == set(first["hosts"])
    shop_row = first["hosts"][host_key(shop.base_url)]
    assert sorted(shop_row.urls) == sorted(f"{shop.base_url}/{page}" for page in ("relay.html", "pricing.html",
                                                                                  "faq.html"))
    assert shop_row.query in searx.results and first["run"].stats["discovery/hosts_queued"] == 2
    asked = [(q["q"][0], q["format"][0]) for q in searx.queries[:2]]
    assert sorted(asked) == [("ChatGPT API 中转", "json"), ("Claude API 中转站", "json")]


def test_the_shop_is_crawled_and_its_relay_page_stored(runs: Any, sites: tuple[Mirror, Mirror, Mirror, SearxNG]) -> None:
    home, config, first, _ = runs
    _, shop, _, _ = sites
    assert sorted(first["shop"]) == ["/faq.html", "/pricing.html", "/relay.html"]
    docs = {d["url"].removeprefix(shop.base_url): d for d in documents(home, config, "discovery-test")}
    assert set(docs) == {"/faq.html", "/pricing.html", "/relay.html"}
    assert docs["/relay.html"]["kind"] == "reseller-ad" and docs["/relay.html"]["fields"]["discovered_by"] == "searxng"
    row = first["hosts"][host_key(shop.base_url)]
    assert row.pages_today == 3 and row.last_crawled_at is not None and first["run"].health == "ok"


def test_a_block_page_backs_only_that_host_off(runs: Any, sites: tuple[Mirror, Mirror, Mirror, SearxNG]) -> None:
    _, _, first, second = runs
    _, _, blocky, _ = sites
    assert len(first["blocky"]) == 1                       # its first page was a block page: the visit ended
    row = second["hosts"][host_key(blocky.base_url)]
    until = row.backoff_until if row.backoff_until.tzinfo else row.backoff_until.replace(tzinfo=UTC)
    assert until > datetime.now(UTC) and "频繁" in row.block_reason and row.last_crawled_at is None
    assert second["blocky"] == first["blocky"]             # not asked again while it backs off
    assert first["run"].stats["discovery/hosts_backed_off"] == 1 and first["run"].health == "ok"
    assert not any(key == "backoff_until" for key in first["run"].stats)   # the source itself does not back off


def test_an_alert_puts_the_host_on_the_recrawl_schedule(runs: Any, sites: tuple[Mirror, Mirror, Mirror, SearxNG]) -> None:
    _, _, first, second = runs
    _, shop, _, _ = sites
    row = second["hosts"][host_key(shop.base_url)]
    assert row.status == "flagged" and row.alerts >= 1 and row.next_crawl_at is not None
    assert second["run"].stats["discovery/hosts_recrawled"] == 1 and second["run"].stats.get("discovery/hosts_queued", 0) == 0
    recrawled = second["shop"][len(first["shop"]):]
    assert len(recrawled) == 1 and recrawled[0] in first["shop"]      # fetched again, though stored
    assert row.pages_today == CAP and second["run"].stats["discovery/capped"] == 1
    assert row.last_crawled_at > first["hosts"][host_key(shop.base_url)].last_crawled_at


@pytest.mark.parametrize(("url", "key"), [
    ("https://www.Shop.Example.com/item/1?x=1#top", "shop.example.com"),
    ("http://127.0.0.2:8080/relay.html", "127.0.0.2:8080"),
    ("https://t.me/s/gpt_accounts_cn/123", "t.me/gpt_accounts_cn"),
    ("https://t.me/gpt_accounts_cn", "t.me/gpt_accounts_cn"),
    ("https://t.me/", None), ("mailto:sales@example.com", None), ("/relative/path", None),
])
def test_host_keys(url: str, key: str | None) -> None:
    assert host_key(url) == key


def test_a_telegram_channel_is_read_through_its_public_preview() -> None:
    assert page_url("https://t.me/gpt_accounts_cn/123", "t.me/gpt_accounts_cn") == "https://t.me/s/gpt_accounts_cn"


def test_searxng_answers_are_read_and_hostile_ones_refused() -> None:
    answer = read_searxng(json.dumps({"results": [{"url": "https://a.example/1"}, {"url": 5}, "x", {"title": "t"}],
                                      "unresponsive_engines": [["google", "CAPTCHA"], "bad"]}))
    assert answer.urls == ["https://a.example/1"] and answer.unresponsive == ["google: CAPTCHA"]
    assert read_searxng('{"query": "x"}').urls == []
    for hostile in ("<html>captcha</html>", "[1, 2]", '{"results": "many"}', "null"):
        with pytest.raises(ValueError, match="not a SearXNG JSON answer"):
            read_searxng(hostile)


def test_searxng_query_names_only_what_is_configured() -> None:
    settings = DiscoverySettings(engines=["bing", "baidu"], time_range="month")
    query = searxng_query("API 中转", 2, settings)
    assert query.startswith("/search?q=API+%E4%B8%AD%E8%BD%AC&format=json&pageno=2&language=all&time_range=month")
    assert query.endswith("&engines=bing%2Cbaidu") and "time_range" not in searxng_query("x", 1, DiscoverySettings())


def test_discovery_runs_on_scrapys_own_scheduler_under_a_redis_frontier() -> None:
    """Its visits' order lives in the spider, so several processes sharing its queue would break it."""
    from scrapy.settings import Settings as ScrapySettings

    from crawlers.configured import scrapy_values
    from crawlers.spiders.discovery import DiscoverySpider
    from ground.config import Settings

    settings = ScrapySettings()
    settings.setdict(scrapy_values(Settings(crawl={"frontier": "redis"})), priority="project")
    DiscoverySpider.update_settings(settings)
    assert settings["SCHEDULER"] == "scrapy.core.scheduler.Scheduler"
