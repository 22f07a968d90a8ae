"""CCGP end to end on a loopback mirror with CCGP's paths, built from the real list and detail
pages in ../shared/corpus/real (read from there; their licences do not allow copying them here).

One crawl (module fixture) then: every detail page stored with its fields, attachments
fetched by uuid and their text indexed with the notice, a malformed attachment logged and
skipped, expected vs fetched counts recorded, a second run fetching nothing new, and an
evidence bundle that round-trips.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from parsel import Selector

from alerts.health import crawl_health
from ground.config import SEEDS_DIR, load_settings
from ground.sources import load_sources
from index.store import Store
from tests.conftest import REAL_CORPUS, needs
from tests.crawl_mirror import Mirror, documents, fast_config, loophole, minimal_pdf, serve_mirror

stored_docs: dict[Path, list[dict]] = {}


def ccgp_docs(home: Path, config: Path) -> list[dict]:
    """The first crawl's documents, read once (each read is a CLI subprocess)."""
    if home not in stored_docs:
        stored_docs[home] = documents(home, config, "ccgp")
    return stored_docs[home]

CCGP = REAL_CORPUS / "procurement" / "ccgp"
LIST = CCGP / "list" / "ccgp_zygg_list_202607_compass.html"
SINGLE_SOURCE = CCGP / "detail" / "ccgp_qtgg_dyly_20260703_26871783_compass.html"
AWARD_WITH_ATTACHMENTS = CCGP / "detail_mca" / "ccgp_zygg_zbgg_pumch_jianyanke_pkg3_20260929.html"
PDF_UUID, DOC_UUID = "D01C92F58F3F1BB4F2FFEAE24CA1A2", "214AE9E3B0FD9D0813339E045F1160"
pytestmark = [needs(LIST), needs(AWARD_WITH_ATTACHMENTS)]

PAGE_TWO = """<html><head><meta charset="utf-8"><title>中央公告</title></head><body>
<p>当前位置：首页 » 政采公告 » 中央公告（第二页，测试用的镜像页面，结构同 index.htm）</p>
<ul class="c_list_bid"><li><a href="./gkzb/202607/t20260702_26860001.htm">第二页的公告</a></li></ul>
<script>Pager({size:2, current:1, prefix:'index',suffix:'htm'});</script></body></html>"""


def _download(query: dict[str, list[str]], _body: bytes) -> tuple[int, dict[str, str], bytes]:
    uuid = query.get("uuid", [""])[0]
    if uuid == PDF_UUID:
        return 200, {"Content-Type": "application/octet-stream"}, minimal_pdf("Nvidia H100 GPU servers 8 units")
    if uuid == DOC_UUID:  # an OLE header and then garbage: a broken Word file
        return 200, {"Content-Type": "application/msword"}, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00\x01" * 300
    return 404, {}, b""


SEARCH_PAGE = """<html><head><meta charset="utf-8"><title>中国政府采购网 搜索</title></head><body>
<div class="vT_z">中国政府采购网 全文检索 政府采购公告 搜索结果 检索条件：{kw}，共找到 {n} 条内容</div>
<ul class="vT-srch-result-list-bid">{items}</ul><p class="pager"><script>Pager({{size:{size}, current:{page}}});</script></p>
</body></html>"""
KNOWN_FROM_LIST = "/cggg/zygg/qtgg/202607/t20260703_26871783.htm"
FOUND_BY_SEARCH = {("H100", "1"): ["/cggg/dfgg/gkzb/202611/t20261101_30000001.htm", KNOWN_FROM_LIST],
                   ("A100", "1"): ["/cggg/dfgg/jzxcs/202611/t20261102_30000002.htm"],
                   ("A100", "2"): ["/cggg/dfgg/dylygg/202611/t20261103_30000003.htm"]}


def _search(query: dict[str, list[str]], _body: bytes) -> tuple[int, dict[str, str], bytes]:
    """bxsearch: results for H100 (one page, one of them known) and A100 (two pages); none otherwise."""
    kw, page = query["kw"][0], query["page_index"][0]
    links = FOUND_BY_SEARCH.get((kw, page), [])
    items = "".join(f'<li><a href="http://www.ccgp.gov.cn{path}">公告</a></li>' for path in links)
    body = SEARCH_PAGE.format(kw=kw, n=len(links), items=items, size=2 if kw == "A100" else 1, page=page)
    return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode("utf-8")


def build_mirror() -> Mirror:
    """The real list at /cggg/zygg/index.htm; its 20 links served by the 8 real detail pages."""
    mirror = Mirror(routes={"/oss/download": _download, "/bxsearch": _search})
    for path in [p for pages in FOUND_BY_SEARCH.values() for p in pages if p != KNOWN_FROM_LIST]:
        mirror.files[path] = SINGLE_SOURCE.read_bytes()
    mirror.files["/cggg/zygg/index.htm"] = LIST.read_bytes()
    mirror.files["/cggg/zygg/index_1.htm"] = PAGE_TWO.encode("utf-8")
    hrefs = Selector(text=LIST.read_text(encoding="utf-8")).css("ul.c_list_bid li > a::attr(href)").getall()
    paths = ["/cggg/zygg/" + href.removeprefix("./") for href in hrefs] + ["/cggg/zygg/gkzb/202607/t20260702_26860001.htm"]
    details = [AWARD_WITH_ATTACHMENTS] + sorted(set((CCGP / "detail").glob("*.html")) | set((CCGP / "detail_mca").glob("*.html"))
                                                 - {AWARD_WITH_ATTACHMENTS})
    for index, path in enumerate(paths):
        page = SINGLE_SOURCE if path.endswith("t20260703_26871783.htm") else details[index % len(details)]
        mirror.files[path] = page.read_bytes()
    return mirror


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mirror, Path, Path, str]]:
    tmp = tmp_path_factory.mktemp("ccgp")
    home, config = tmp / "home", fast_config(tmp)
    with serve_mirror(build_mirror()) as mirror:
        completed = loophole(["crawl", "ccgp", "--base-url", mirror.base_url], home, config)
        assert completed.returncode == 0, completed.stderr[-3000:]
        yield mirror, home, config, completed.stdout + completed.stderr


def test_every_detail_page_is_stored_with_its_fields(crawled: tuple[Mirror, Path, Path, str]) -> None:
    mirror, home, config, _ = crawled
    docs = {d["url"].removeprefix(mirror.base_url): d for d in ccgp_docs(home, config)}
    detail_paths = [p for p in mirror.files if "/t2026" in p and "/t202611" not in p]  # not the search-only ones
    assert sorted(docs) == sorted(detail_paths)
    single = docs["/cggg/zygg/qtgg/202607/t20260703_26871783.htm"]
    fields = single["fields"]
    assert single["title"] == "中国科学院金属研究所球差原位透射电镜采购项目单一来源采购公告"
    assert fields["project_no"] == "OITC-G260610702"
    assert fields["buyer"] == "中国科学院金属研究所"
    assert fields["agency"] == "东方国际招标有限责任公司"
    assert fields["budget"] == {"amount": 33_000_000.0, "currency": "CNY"}
    assert fields["tender_open_date"] == "2026-07-09T09:30"
    assert fields["region"] == "沈阳市" and fields["notice_type"] == "tender"
    assert fields["scope"] == "central" and fields["channel"] == "其他公告"
    assert fields["items"][0]["name"] == "球差原位透射电镜"
    assert fields["process_id"].startswith("proc-") and single["process_id"] == fields["process_id"]


def test_attachments_are_fetched_by_uuid_and_indexed_with_the_notice(crawled: tuple[Mirror, Path, Path, str]) -> None:
    mirror, home, config, output = crawled
    award = next(d for d in ccgp_docs(home, config) if d["title"].startswith("中国医学科学院北京协和医院"))
    attachments = {a["name"]: a for a in award["fields"]["attachments"]}
    pdf = attachments["检验科设备购置-第3包-发售稿.pdf"]
    assert pdf["format"] == "pdf" and pdf["chars"] > 10 and len(pdf["sha256"]) == 64
    assert "text not extracted" in output and "107号标-中标公告.doc" in output  # logged, crawl went on
    assert "error" in attachments["107号标-中标公告.doc"]
    assert f"/oss/download?uuid={PDF_UUID}" in mirror.requested("/oss/")
    found = loophole(["search", "H100 GPU servers", "--json", "--limit", "3"], home, config)
    assert any(r["url"] == award["url"] for r in json.loads(found.stdout)), found.stderr[-2000:]
    assert award["fields"]["suppliers"] == ["北京若华医疗器械有限公司"]
    assert award["fields"]["award_value"] == {"amount": 1_820_000.0, "currency": "CNY"}


def test_second_run_fetches_nothing_new(crawled: tuple[Mirror, Path, Path, str]) -> None:
    mirror, home, config, _ = crawled
    before = len(mirror.log)
    completed = loophole(["crawl", "ccgp", "--base-url", mirror.base_url], home, config)
    assert completed.returncode == 0, completed.stderr[-2000:]
    again = [target for _, target in mirror.log[before:] if target != "/robots.txt"]
    assert again == ["/cggg/zygg/index.htm"]  # the list, which holds only known notices: the walk stops
    # A healthy run, not "returned nothing": the digest's crawl health leaves it out.
    settings = load_settings(path=config, home=home)
    store = Store(settings.db_url)
    with store.session() as session:
        health = crawl_health(session, [load_sources(settings.sources_file)["ccgp"]], datetime.now(UTC),
                              timedelta(hours=4))
    store.close()
    assert health[0].ok and health[0].reason.startswith("nothing new: "), health


def test_evidence_bundle_round_trips(crawled: tuple[Mirror, Path, Path, str], tmp_path: Path) -> None:
    _, home, config, _ = crawled
    award = next(d for d in ccgp_docs(home, config) if d["title"].startswith("中国医学科学院北京协和医院"))
    bundle = tmp_path / "evidence.zip"
    written = loophole(["evidence", str(award["id"]), "--out", str(bundle)], home, config)
    assert written.returncode == 0, written.stderr
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        page = next(f for f in manifest["files"] if f["role"] == "page")
        assert archive.read(page["path"]) == AWARD_WITH_ATTACHMENTS.read_bytes()
        assert page["url"] == award["url"] and page["fetched_at"] and page["headers"]["content-type"] == "text/html"
        assert [f["name"] for f in manifest["files"] if f["role"] == "attachment"] == ["检验科设备购置-第3包-发售稿.pdf",
                                                                                      "107号标-中标公告.doc"]
        extracted = json.loads(archive.read("extracted.json"))
        assert extracted["fields"]["project_no"] == "0701-264106070107"
    assert loophole(["evidence", "--verify", str(bundle)], home, config).returncode == 0
    edited = tmp_path / "edited.zip"  # tamper: the same bundle with the page's bytes changed
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(edited, "w") as target:
        for name in source.namelist():
            target.writestr(name, b"<html>edited</html>" if name == page["path"] else source.read(name))
    tampered = loophole(["evidence", "--verify", str(edited)], home, config)
    assert tampered.returncode == 1 and "does not match" in tampered.stderr + tampered.stdout


def test_keyword_search_for_watch_terms(crawled: tuple[Mirror, Path, Path, str]) -> None:
    mirror, home, config, _ = crawled
    before = len(mirror.log)
    completed = loophole(["crawl", "ccgp-search", "--base-url", mirror.base_url, "--delay", "0"], home, config)
    assert completed.returncode == 0, completed.stderr[-2000:]
    searches = [parse_qs(urlsplit(t).query) for _, t in mirror.log[before:] if t.startswith("/bxsearch")]
    terms = load_sources(SEEDS_DIR / "sources.yaml")["ccgp-search"].search.terms  # type: ignore[union-attr]
    assert {q["kw"][0] for q in searches} == set(terms)
    first = searches[0]
    assert re.fullmatch(r"20\d\d:\d\d:\d\d", first["start_time"][0]) and first["timeType"] == ["6"]
    assert first["bidType"] == ["0"] and first["pinMu"] == ["0"] and first["bidSort"] == ["0"]
    pages = sorted((q["kw"][0], q["page_index"][0]) for q in searches if q["kw"][0] in ("H100", "A100"))
    assert pages == [("A100", "1"), ("A100", "2"), ("H100", "1")]  # H100's page held a known notice: no page 2
    fetched = [t for _, t in mirror.log[before:] if t.startswith("/cggg/")]
    assert sorted(fetched) == sorted(p for pages in FOUND_BY_SEARCH.values() for p in pages if p != KNOWN_FROM_LIST)
    assert len(documents(home, config, "ccgp-search")) == 3
