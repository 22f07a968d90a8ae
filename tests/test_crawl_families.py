"""The other families on a loopback mirror, in one crawl process: an Epoint JSON-API portal,
a cloud marketplace searched for a vendor, reseller pages from a seed list, a host that
answers 429 with Retry-After, and a portal that answers with block pages.

The pages here are written to mimic the real structure (Epoint's list API and ewb-trade
detail template; an Azure-Marketplace-style listing from the demo web).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from index.store import CrawlRun, Snapshot, Store
from tests.conftest import DEMO_WEB
from tests.crawl_mirror import Mirror, documents, loophole, serve_mirror

API = "/inteligentsearch/rest/esinteligentsearch/getFullTextDataNew"
SOURCES = """
sources:
  - {id: epoint-test, kind: procurement, spider: epoint, base_url: 'https://jsggzy.jszwfw.gov.cn',
     search: {terms: [GPU], days: 14}, options: {categories: ['003001001'], rows: 2}}
  - {id: market-test, kind: marketplace, spider: marketplace, base_url: 'https://azuremarketplace.microsoft.com',
     search: {terms: [Dahua]}, follow: [/marketplace/apps/], options: {search_url: '/marketplace/search?q={term}'}}
  - {id: shops-test, kind: reseller, spider: site, base_url: 'https://shop.example.invalid', seeds_file: shops.txt}
  - {id: slow-test, kind: news, spider: site, base_url: 'https://news.example.invalid', start: [/news/index.html],
     follow: [/news/2026/]}
  - {id: blocky, kind: procurement, spider: site, base_url: 'https://blocky.example.invalid',
     start: [/blocky/index.html], follow: [/blocky/n/]}
"""
DETAIL = """<html><head><meta charset="utf-8"><title>{title}</title></head><body>
<div class="ewb-top">江苏省公共资源交易网 首页 交易信息 政策法规</div>
<h2 class="ewb-trade-h">{title}</h2><div class="ewb-trade-info">信息发布时间：2026-11-0{n} 09:30:00 来源：苏州交易集团</div>
<div class="ewb-trade-con"><p>项目编号：JSZC-2026-{n:03d}</p><p>采购人：苏州市某局</p><p>预算金额：{budget}万元</p>
<p>采购内容：{what}。供应商须在合同签订后30日内完成部署，并提供三年运维服务。本项目接受进口产品投标。</p>
<p>投标截止时间：2026年11月2{n}日 09:30。开标地点：苏州市公共资源交易中心。</p></div></body></html>"""
NOTICES = [("苏州市某局视频汇聚平台扩容项目招标公告", "视频汇聚平台扩容及存储", 180),
           ("苏州市某局智慧城市运营服务项目招标公告", "智慧城市运营中心运维服务", 95),
           ("苏州市某局办公设备采购项目招标公告", "台式计算机200台、打印机30台", 120),
           ("苏州市某局GPU算力服务器租赁项目招标公告", "租用含8卡H100 GPU的算力服务器，部署于境外云平台", 600)]
SHOP = """<html><head><meta charset="utf-8"><title>Azure OpenAI 企业账号 代开通</title></head><body>
<h1>Azure OpenAI 企业账号 代开通 国内直连</h1><p>提供微软 Azure OpenAI 企业订阅，GPT-4 可用，香港区域部署，
支持对公付款开发票，政府和公安单位项目可走代理合同。月付起，量大优惠，联系客服获取报价。</p></body></html>"""
BLOCK = "<html><head><meta charset='utf-8'><title>访问验证</title></head><body><p>您的访问过于频繁，请输入验证码后继续。</p></body></html>"
NEWS = """<html><head><meta charset="utf-8"><title>Cloud compute report</title></head><body><article>
<h1>Overseas GPU clouds keep serving restricted buyers</h1><p>Analysts say rented H100 capacity in Singapore data
centres is marketed to mainland customers through resellers, with invoices issued by Hong Kong subsidiaries. The
report lists prices, contract terms and the public-security bureaus named in tender documents.</p></article></body></html>"""


def _epoint_api(_query: dict, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = json.loads(body)
    links = [f"/jyxx/003001/003001001/2026110{n}/notice-{n}.html" for n in range(1, 5)]
    if request["wd"]:
        chosen, total = [links[3]], 1
    else:
        chosen, total = links[request["pn"]:request["pn"] + request["rn"]][:3 - request["pn"]], 3
    records = [{"titlenew": NOTICES[int(link[-6]) - 1][0], "linkurl": link, "infodateformat": "2026-11-01",
                "categoryname": "招标公告/资审公告", "zhuanzai": "苏州市", "infoid": f"id-{link[-6]}"} for link in chosen]
    return 200, {"Content-Type": "application/json"}, json.dumps({"result": {"totalcount": total,
                                                                              "records": records}}).encode()


def _marketplace_search(query: dict, _body: bytes) -> tuple[int, dict[str, str], bytes]:
    assert query["q"] == ["Dahua"]
    page = ('<html><body><h1>Results for Dahua</h1><a href="/marketplace/apps/dahua-apac.dahua-cloudvms-vsaas.html">'
            'Dahua CloudVMS</a><a href="/privacy">Privacy</a></body></html>')
    return 200, {"Content-Type": "text/html"}, page.encode()


class _RetryAfterOnce:
    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, _query: dict, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            return 429, {"Retry-After": "2", "Content-Type": "text/html"}, b"<html>slow down</html>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, NEWS.encode()


def build_mirror(slow: _RetryAfterOnce) -> Mirror:
    mirror = Mirror(routes={API: _epoint_api, "/marketplace/search": _marketplace_search, "/news/2026/report.html": slow})
    for n, (title, what, budget) in enumerate(NOTICES, start=1):
        mirror.files[f"/jyxx/003001/003001001/2026110{n}/notice-{n}.html"] = DETAIL.format(
            title=title, what=what, budget=budget, n=n).encode("utf-8")
    for page in (DEMO_WEB / "marketplace" / "apps").glob("*.html"):
        mirror.files[f"/marketplace/apps/{page.name}"] = page.read_bytes()
    mirror.files["/item/889.html"] = SHOP.encode("utf-8")
    mirror.files["/news/index.html"] = (b'<html><body><h1>Compute policy news</h1><p>Reports on cloud access and '
                                        b'export controls.</p><a href="/news/2026/report.html">report</a></body></html>')
    mirror.files["/blocky/index.html"] = ("<html><head><meta charset='utf-8'></head><body><h1>某省政府采购网 采购公告 列表</h1>"
                                          "<p>本栏目发布本省各级预算单位的政府采购公告，按发布时间排列。</p>" + "".join(
        f'<a href="/blocky/n/{i}.html">n{i}</a>' for i in range(1, 6)) + "</body></html>").encode()
    for i in range(1, 6):
        mirror.files[f"/blocky/n/{i}.html"] = BLOCK.encode("utf-8")
    return mirror


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mirror, Path, Path, _RetryAfterOnce]]:
    tmp = tmp_path_factory.mktemp("families")
    (tmp / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    (tmp / "shops.txt").write_text("# resellers\nhttps://shop.example.invalid/item/889.html\n", encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"sources_file": str(tmp / "sources.yaml"), "crawl": {
        "download_delay": 0, "block_threshold": 3, "block_backoff_minutes": 60, "max_retry_after_seconds": 5}}))
    slow = _RetryAfterOnce()
    with serve_mirror(build_mirror(slow)) as mirror:
        completed = loophole(["crawl", "epoint-test", "market-test", "shops-test", "slow-test", "blocky",
                              "--base-url", mirror.base_url], tmp / "home", config)
        assert completed.returncode == 0, completed.stderr[-3000:]
        yield mirror, tmp / "home", config, slow


def _runs(home: Path) -> dict[str, CrawlRun]:
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    with store.session() as session:
        runs = {run.source: run for run in session.scalars(select(CrawlRun).order_by(CrawlRun.id))}
    store.close()
    return runs


def test_epoint_json_api_lists_pages_and_search(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    mirror, home, config, _ = crawled
    docs = {d["url"].removeprefix(mirror.base_url): d for d in documents(home, config, "epoint-test")}
    assert sorted(docs) == [f"/jyxx/003001/003001001/2026110{n}/notice-{n}.html" for n in range(1, 5)]
    gpu = docs["/jyxx/003001/003001001/20261104/notice-4.html"]
    assert gpu["title"] == NOTICES[3][0] and gpu["fields"]["region"] == "苏州市"
    assert gpu["fields"]["project_no"] == "JSZC-2026-004" and gpu["fields"]["buyer"] == "苏州市某局"
    assert gpu["fields"]["budget"] == {"amount": 6_000_000.0, "currency": "CNY"}
    stats = _runs(home)["epoint-test"].stats
    assert stats["pages/expected"] == 4 and stats["pages/fetched"] == 4


def test_marketplace_search_keeps_listing_fields(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    mirror, home, config, _ = crawled
    (listing,) = documents(home, config, "market-test")
    fields = listing["fields"]["listing"]
    assert fields["publisher"] == "Dahua Technology Asia Pacific Pte. Ltd." and "Azure Kubernetes Service" in fields[
        "deployable_on"]
    assert "Dahua" in listing["entities"] or "Dahua Technology" in listing["entities"]
    assert mirror.requested("/marketplace/search") == ["/marketplace/search?q=Dahua"]


def test_reseller_seed_page_is_stored(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    mirror, home, config, _ = crawled
    (shop,) = documents(home, config, "shops-test")
    assert shop["url"] == mirror.base_url + "/item/889.html" and "Azure OpenAI" in shop["title"]


def test_retry_after_is_honoured(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    _, home, config, slow = crawled
    assert len(slow.times) == 2 and slow.times[1] - slow.times[0] >= 1.9
    assert [d["title"] for d in documents(home, config, "slow-test")] == ["Overseas GPU clouds keep serving restricted buyers"]


def test_block_pages_are_not_stored_and_the_source_backs_off(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    mirror, home, config, _ = crawled
    assert documents(home, config, "blocky") == []
    run = _runs(home)["blocky"]
    assert run.health == "degraded" and "频繁" in run.reason
    assert run.stats["backoff_until"] > run.finished_at.isoformat()
    assert sum(v for k, v in run.stats.items() if k.startswith("blocked/")) >= 3  # the threshold closed the spider
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    with store.session() as session:  # not even as a snapshot
        assert not session.scalars(select(Snapshot).where(Snapshot.source == "blocky")).all()
    store.close()
    again = loophole(["crawl", "blocky", "--base-url", mirror.base_url], home, config)
    assert again.returncode == 0 and "backing off" in again.stderr


def test_second_run_fetches_nothing_new(crawled: tuple[Mirror, Path, Path, _RetryAfterOnce]) -> None:
    mirror, home, config, _ = crawled
    before = len(mirror.log)
    completed = loophole(["crawl", "epoint-test", "--base-url", mirror.base_url], home, config)
    assert completed.returncode == 0, completed.stderr[-2000:]
    again = [target for _, target in mirror.log[before:] if target != "/robots.txt"]
    assert again == [API, API]  # first list page (all known: the walk stops) and the search
