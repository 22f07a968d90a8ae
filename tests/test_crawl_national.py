"""National reach on one loopback mirror, in one crawl process: CCGP's local notices from every
channel, the national public-resource trading platform (ggzy.gov.cn) and a 政采云 site, then
``loophole sources --coverage``.

CCGP: the real detail pages in ../shared/corpus/real (read from there, their licences do not allow
copying them here; those checks skip when the corpus is absent), under their real channel paths,
one of them only on the 废标/流标 channel's list. ggzy and 政采云: the answers in
tests/fixtures/national, written in the platforms' real shapes (see its README).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from crawlers.spiders.ccgp import CHANNEL_TYPES
from index.store import CrawlRun, Store
from tests.conftest import REAL_CORPUS, ROOT, needs
from tests.crawl_mirror import Mirror, documents, loophole, serve_mirror

FIXTURES = ROOT / "tests" / "fixtures" / "national"
CCGP = REAL_CORPUS / "procurement" / "ccgp"
# Real pages at the paths CCGP published them under (MANIFEST.md); two of them at paths of other
# channels (询价, 邀请招标) so that every kind of list is walked.
LOCAL = {"/cggg/dfgg/zbgg/202609/t20260928_27409767.htm": CCGP / "detail_mca" / "ccgp_dfgg_zbgg_hebei_cangzhou_20260928.html",
         "/cggg/dfgg/gzgg/202609/t20260924_27397249.htm":
             CCGP / "detail_mca" / "ccgp_dfgg_gzgg_beijing_fengsheng_06pkg_20260924.html",
         "/cggg/dfgg/xjgg/202609/t20260928_27407474.htm":
             CCGP / "detail_mca" / "ccgp_dfgg_gzgg_heilongjiang_gannan_20260928.html",
         "/cggg/dfgg/fblbgg/202609/t20260924_27401689.htm":
             CCGP / "detail_mca" / "ccgp_dfgg_zzgg_beijing_fangshezu_14-16pkg_20260924.html",
         "/cggg/dfgg/yqzb/202609/t20260928_27410652.htm":
             CCGP / "detail_mca" / "ccgp_dfgg_zbgg_hebei_hbmu3_ct_mri_20260928.html"}
FAILED_BID = "/cggg/dfgg/fblbgg/202609/t20260924_27401689.htm"
# The all-local list carries three of them; 废标/流标 and 邀请招标 only their own channel's list.
LISTS = {"/cggg/dfgg/index.htm": list(LOCAL)[:3], "/cggg/dfgg/fblbgg/index.htm": [FAILED_BID],
         "/cggg/dfgg/yqzb/index.htm": [list(LOCAL)[4]], "/cggg/dfgg/zbgg/index.htm": [list(LOCAL)[0]]}
LIST_PAGE = """<html><head><meta charset="utf-8"><title>地方公告</title></head><body>
<p>当前位置：首页 » 政采公告 » 地方公告（测试镜像的列表页，结构同 www.ccgp.gov.cn）</p>
<ul class="c_list_bid">{items}</ul><script>Pager({{size:1, current:0, prefix:'index',suffix:'htm'}});</script></body></html>"""

SOURCES = """
sources:
  - {id: local-test, kind: procurement, spider: ccgp, base_url: 'https://www.ccgp.gov.cn',
     start: [/cggg/dfgg/index.htm], options: {max_pages: 3, all_channels: dfgg}, provinces: [all]}
  - {id: ggzy-test, kind: procurement, spider: ggzy, base_url: 'https://www.ggzy.gov.cn',
     search: {terms: [GPU, 验证码测试], days: 7}, options: {days: 2}, provinces: [all]}
  - {id: zcy-test, kind: procurement, spider: zcy, base_url: 'https://www.zfcg.sh.gov.cn',
     search: {terms: [算力], days: 7}, options: {api: /portal/all, rows: 2, days: 2}, provinces: [上海]}
"""
GGZY_LIST = json.loads((FIXTURES / "ggzy_getTradList.json").read_text(encoding="utf-8"))
GGZY_DETAIL = (FIXTURES / "ggzy_detail_b.html").read_text(encoding="utf-8")
ZCY_LIST = json.loads((FIXTURES / "zcy_portal_all.json").read_text(encoding="utf-8"))
ZCY_DETAIL = (FIXTURES / "zcy_portal_detail.json").read_bytes()


def _json(data: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json;charset=UTF-8"}, json.dumps(data, ensure_ascii=False).encode()


def _third(record: dict, key: str, value: str, title: str) -> dict:
    """A third notice for the second list page: the first one's record under another id."""
    third = copy.deepcopy(record)
    third[key], third["title"] = value, title
    if "url" in third:
        third["url"] = third["url"].replace(record["id"], value)
    return third


GGZY_THIRD = _third(GGZY_LIST["data"]["records"][0], "id", "0051d0c0ffee4b2a8e3f00000000000000003",
                    "某市大数据局政务云资源租赁服务采购公告")
ZCY_THIRD = _third(ZCY_LIST["result"]["data"]["data"][0], "articleId", "Zz+Third/Notice0==", "某区政务云服务采购公告")


class Platforms:
    """The ggzy and 政采云 API routes; every request's form or JSON body is kept for the checks."""

    def __init__(self) -> None:
        self.ggzy_forms: list[dict[str, str]] = []
        self.zcy_bodies: list[dict] = []

    def ggzy_list(self, _query: dict, body: bytes) -> tuple[int, dict[str, str], bytes]:
        form = {key: values[0] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
        self.ggzy_forms.append(form)
        if form["FINDTXT"] == "验证码测试":
            return _json({"code": 829, "message": "请输入验证码", "data": {"captchaToken": "t", "captchaImage": "iVBO"}})
        answer = copy.deepcopy(GGZY_LIST)
        if form["FINDTXT"] == "GPU":
            answer["data"].update(records=answer["data"]["records"][:1], total=1, pages=1)
        elif form["PAGENUMBER"] == "2":
            answer["data"].update(records=[GGZY_THIRD], current=2)
        return _json(answer)

    def zcy_list(self, _query: dict, body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = json.loads(body)
        self.zcy_bodies.append(request)
        answer = copy.deepcopy(ZCY_LIST)
        data = answer["result"]["data"]
        if request["keyword"] == "算力":
            data.update(data=data["data"][:1], total=1)
        elif request["pageNo"] == 2:
            data["data"] = [ZCY_THIRD]
        return _json(answer)

    @staticmethod
    def zcy_detail(query: dict, _body: bytes) -> tuple[int, dict[str, str], bytes]:
        article = query["articleId"][0]
        if article == ZCY_LIST["result"]["data"]["data"][0]["articleId"]:
            return 200, {"Content-Type": "application/json;charset=UTF-8"}, ZCY_DETAIL
        detail = json.loads(ZCY_DETAIL)
        detail["result"]["data"].update(articleId=article, title=f"公告 {article}")
        return _json(detail)


def ggzy_notice_path(record: dict) -> str:
    return record["url"].replace("/html/a/", "/html/b/")


def zcy_notice_path(record: dict) -> str:
    return f"/portal/detail?articleId={quote(record['articleId'], safe='')}"


def build_mirror(platforms: Platforms) -> Mirror:
    mirror = Mirror(routes={"/information/pubTradingInfo/getTradList": platforms.ggzy_list,
                            "/portal/all": platforms.zcy_list, "/portal/detail": platforms.zcy_detail})
    if all(page.exists() for page in LOCAL.values()):
        for path, page in LOCAL.items():
            mirror.files[path] = page.read_bytes()
        for path, notices in LISTS.items():
            items = "".join(f'<li><a href="{n.removeprefix(path.rsplit("/", 1)[0] + "/")}">公告</a></li>' for n in notices)
            mirror.files[path] = LIST_PAGE.format(items=items).encode("utf-8")
    for record in [*GGZY_LIST["data"]["records"], GGZY_THIRD]:
        page = GGZY_DETAIL if record is GGZY_LIST["data"]["records"][0] else GGZY_DETAIL.replace(
            GGZY_LIST["data"]["records"][0]["title"], record["title"])
        mirror.files[ggzy_notice_path(record)] = page.encode("utf-8")
    return mirror


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mirror, Platforms, Path, Path]]:
    tmp = tmp_path_factory.mktemp("national")
    (tmp / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"sources_file": str(tmp / "sources.yaml"), "crawl": {"download_delay": 0}}))
    platforms = Platforms()
    with serve_mirror(build_mirror(platforms)) as mirror:
        completed = loophole(["crawl", "local-test", "ggzy-test", "zcy-test", "--base-url", mirror.base_url],
                             tmp / "home", config)
        assert completed.returncode == 0, completed.stderr[-3000:]
        yield mirror, platforms, tmp / "home", config


def _by_path(mirror: Mirror, home: Path, config: Path, source: str) -> dict[str, dict]:
    return {d["url"].removeprefix(mirror.base_url): d for d in documents(home, config, source)}


def _run_stats(home: Path, source: str) -> dict:
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    try:
        run = store.latest_crawl_run(source)
    finally:
        store.close()
    assert isinstance(run, CrawlRun)
    return run.stats


@needs(CCGP / "detail_mca")
def test_ccgp_local_reaches_every_channel(crawled: tuple[Mirror, Platforms, Path, Path]) -> None:
    mirror, _, home, config = crawled
    docs = _by_path(mirror, home, config, "local-test")
    assert sorted(docs) == sorted(LOCAL)                       # the 废标/流标 and 邀请招标 notices too
    assert all(len(mirror.requested(path)) == 1 for path in LOCAL)   # listed twice, fetched once
    assert {f"/cggg/dfgg/{folder}/index.htm" for folder in CHANNEL_TYPES} <= set(mirror.requested("/cggg/dfgg/"))
    failed = docs[FAILED_BID]["fields"]
    assert failed["channel"] == "废标流标" and failed["scope"] == "local" and failed["notice_type"] == "tenderCancellation"
    assert failed["project_no"] == "202601" and failed["buyer"] == "北京市医院管理中心(本级)"
    assert failed["date_published"] == "2026-09-24T19:48"
    award = docs["/cggg/dfgg/zbgg/202609/t20260928_27409767.htm"]["fields"]
    assert award["project_no"] == "ZHZB2026404" and award["award_value"] == {"amount": 2569303.17, "currency": "CNY"}


def test_ggzy_list_api_notice_pages_and_fields(crawled: tuple[Mirror, Platforms, Path, Path]) -> None:
    mirror, platforms, home, config = crawled
    docs = _by_path(mirror, home, config, "ggzy-test")
    first = GGZY_LIST["data"]["records"][0]
    assert sorted(docs) == sorted(ggzy_notice_path(r) for r in [*GGZY_LIST["data"]["records"], GGZY_THIRD])
    assert not mirror.requested("/information/deal/html/a/")           # the frame pages are never fetched
    notice = docs[ggzy_notice_path(first)]
    fields = notice["fields"]
    assert notice["title"] == first["title"] and notice["date"] == "2026-12-04"
    assert fields["project_no"] == "SZGG2026-G-1187" and fields["buyer"] == "苏州市某区公安分局"
    assert fields["agency"] == "江苏某某项目管理有限公司" and fields["budget"] == {"amount": 4_865_000.0, "currency": "CNY"}
    assert fields["date_published"] == "2026-12-04" and fields["region"] == "江苏省"
    assert fields["platform"] == "苏州市公共资源交易中心" and fields["notice_category"] == "采购/资审公告"
    walk = [f for f in platforms.ggzy_forms if not f["FINDTXT"]]
    assert [f["PAGENUMBER"] for f in walk] == ["1", "2"]
    assert all(f["DEAL_CLASSIFY"] == "02" and f["DEAL_TIME"] == "06" and f["TIMEBEGIN"] < f["TIMEEND"] for f in walk)


def test_ggzy_captcha_answer_counts_as_a_block(crawled: tuple[Mirror, Platforms, Path, Path]) -> None:
    _, _, home, _ = crawled
    stats = _run_stats(home, "ggzy-test")
    assert [key for key in stats if key.startswith("blocked/")] == ["blocked/验证码 (the list API asks for a captcha, "
                                                                    "code 829)"]
    assert "829" in stats["source_degraded"] and stats["pages/fetched"] == 3


def test_zcy_json_api_detail_json_and_fields(crawled: tuple[Mirror, Platforms, Path, Path]) -> None:
    mirror, platforms, home, config = crawled
    docs = _by_path(mirror, home, config, "zcy-test")
    records = [*ZCY_LIST["result"]["data"]["data"], ZCY_THIRD]
    assert sorted(docs) == sorted(zcy_notice_path(r) for r in records)
    notice = docs[zcy_notice_path(records[0])]
    fields = notice["fields"]
    assert notice["title"] == records[0]["title"] and notice["kind"] == "procurement-notice"
    assert fields["project_no"] == "310115124251203141245-15256031" and fields["buyer"] == "上海市某区数据局"
    assert fields["budget"] == {"amount": 6_800_000.0, "currency": "CNY"} and fields["date_published"] == "2026-12-04"
    assert fields["region"] == "上海市浦东新区" and fields["procurement_method"] == "公开招标"
    store = Store(f"sqlite:///{home / 'loophole.db'}")   # the JSON is the evidence, stored as fetched
    try:
        stored = store.document_by_url(mirror.base_url + zcy_notice_path(records[0]))
    finally:
        store.close()
    assert stored is not None and stored.sha256 == hashlib.sha256(ZCY_DETAIL).hexdigest()
    walk = [b for b in platforms.zcy_bodies if not b["keyword"]]
    assert [b["pageNo"] for b in walk] == [1, 2] and walk[0]["firstCode"] == "ZcyAnnouncement"
    assert isinstance(walk[0]["publishDateBegin"], int) and walk[0]["publishDateBegin"] < walk[0]["publishDateEnd"]


def test_coverage_names_each_provinces_sources_and_last_run(crawled: tuple[Mirror, Platforms, Path, Path]) -> None:
    _, _, home, config = crawled
    completed = loophole(["sources", "--coverage", "--json"], home, config)
    assert completed.returncode == 0, completed.stderr
    rows = {row["province"]: {s["id"]: s for s in row["sources"]} for row in json.loads(completed.stdout)}
    assert set(rows["上海"]) == {"local-test", "ggzy-test", "zcy-test"} and set(rows["西藏"]) == {"local-test", "ggzy-test"}
    assert rows["上海"]["zcy-test"]["last_run"] and rows["上海"]["zcy-test"]["health"] == "ok"
    assert rows["上海"]["ggzy-test"]["health"] == "degraded" and rows["中央"] == {}
    table = loophole(["sources", "--coverage"], home, config)
    assert table.returncode == 0 and "zcy-test" in table.stdout and "内蒙古" in table.stdout
