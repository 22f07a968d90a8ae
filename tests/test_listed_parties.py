"""Listed parties: the restriction lists loaded as published, matched against the parties of
Chinese notices, shown in the digest, the export and the API, and re-flagged when a list changes.

The lists are real excerpts (tests/fixtures/lists, see its README): the Federal Register's
Entity List rule 2023-03929 and GovWizely's CSL records (CC0). The notices are fictional.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.dedup import assign_groups
from alerts.digest import Digest, collect, render
from alerts.export import export_records
from ground.config import Settings, Subscription, load_settings
from index.embed import Embedder, get_embedder
from index.restricted import active_version, update_lists, version_entries, versions
from index.store import Alert
from loophole.pipeline import Monitor, RawPage
from web.app import create_app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LISTS = FIXTURES / "lists"
FR_RULE = LISTS / "FR_2023-03929_entity_list_additions.xml"
CSL_UVL = LISTS / "csl_uvl_results.json"
CSL_EL = LISTS / "csl_el_old_layout.csv"
ALIASES = FIXTURES / "listed_parties" / "aliases.yaml"

NOTICE = """<html><head><meta charset="utf-8"><title>{buyer}境外GPU云服务器算力租赁服务项目公开招标公告</title></head>
<body><article><h1>{buyer}境外GPU云服务器算力租赁服务项目公开招标公告</h1>
<p>项目编号：{number}</p>
<p>采购人：{buyer}</p>
<p>采购代理机构：中招国际招标有限公司</p>
<p>预算金额：480.00万元</p>
<p>采购需求：租用亚马逊AWS新加坡区域GPU云服务器，配置NVIDIA H100 GPU共64卡，用于大模型训练，服务期一年。</p>
<p>供应商须提供境外节点算力租赁服务，按需计费，支持远程访问。</p>
<p>开标时间：2026年11月30日 09:30</p></article></body></html>"""
BUYERS = {
    "listed-fr": ("北京云泽科技有限公司", "Beijing Yunze Technology Co., Ltd."),       # transliteration
    "listed-alias": ("长沙天仪空间科技研究院有限公司", "Spacety Co., Ltd."),          # the alias file
    "unlisted": ("北京云智科技有限公司", None),                                       # a near miss
    "unrelated": ("浙江大学", None),
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


def _notice(key: str, buyer: str) -> RawPage:
    body = NOTICE.format(buyer=buyer, number=f"ZB-2026-{abs(hash(key)) % 10000:04d}").encode("utf-8")
    return RawPage(url=f"http://www.ccgp.gov.cn/cggg/dfgg/gkzb/202611/t20261115_{key}.htm", body=body, source="ccgp")


@pytest.fixture
def monitor(settings: Settings) -> Iterator[Monitor]:
    monitor = Monitor(settings)
    yield monitor
    monitor.close()


def _ingest_all(monitor: Monitor) -> dict[str, int]:
    ids = {}
    for key, (buyer, _) in BUYERS.items():
        result = monitor.ingest(_notice(key, buyer))
        assert result.status == "stored" and result.doc_id is not None
        ids[key] = result.doc_id
    return ids


def _digest(monitor: Monitor, name: str) -> Digest:
    assign_groups(monitor.store)
    with monitor.store.session() as session:
        return collect(session, Subscription(name=name), {}, "email", [])


def test_lists_flag_listed_buyers_in_digest_export_and_api(monitor: Monitor, settings: Settings,
                                                           embedder: Embedder, tmp_path: Path) -> None:
    report = update_lists(monitor.store, [CSL_UVL, CSL_EL, FR_RULE, ALIASES], embedder, settings.screening)
    assert report.version == 1 and report.entries == 28 and not report.unknown_aliases
    ids = _ingest_all(monitor)
    with monitor.store.session() as session:
        flagged = {row.doc_id for row in session.scalars(select(Alert))}
    assert set(ids.values()) <= flagged, "every notice is evidence of GPU rental, listed buyer or not"

    digest = _digest(monitor, "t")
    first = digest.items[0]
    assert {p["entry_name"] for p in first.listed} <= {"Beijing Yunze Technology Co., Ltd.", "Spacety Co., Ltd."}
    assert first.listed, "an alert whose buyer is listed is ranked first"
    by_doc = {item.doc_ids[0]: item for item in digest.items}
    for key, (buyer, entry) in BUYERS.items():
        item = by_doc[ids[key]]
        listed = [(p["party"], p["list"], p["entry_name"]) for p in item.listed if p["role"] == "buyer"]
        assert listed == ([(buyer, "EL", entry)] if entry else []), key
    # The watchlist knows 天仪 as the vendor Spacety: a vendor is screened like a buyer.
    assert ("vendor", "Spacety") in {(p["role"], p["party"]) for p in by_doc[ids["listed-alias"]].listed}
    assert [p["strength"] for p in by_doc[ids["unlisted"]].parties] in ([], ["possible"])
    html, text = render(digest)
    assert "LISTED: buyer 北京云泽科技有限公司 is on the Entity List (EL) - Bureau of Industry and Security: " \
           "Beijing Yunze Technology Co., Ltd." in text
    assert "Spacety Co., Ltd." in html and "LISTED" in html
    if by_doc[ids["unlisted"]].parties:
        assert "possibly listed, to check: buyer 北京云智科技有限公司" in text

    client = TestClient(create_app(settings, auth=False))
    document = client.get(f"/api/documents/{ids['listed-alias']}").json()
    assert [(p["party"], p["entry_name"], p["method"]) for p in document["listed_parties"]
            if p["strength"] == "listed" and p["role"] == "buyer"] == [
        ("长沙天仪空间科技研究院有限公司", "Spacety Co., Ltd.", "alias")]
    alerts = client.get("/api/alerts").json()
    assert any(p["entry_name"] == "Beijing Yunze Technology Co., Ltd." for a in alerts for p in a["listed_parties"])
    page = client.get(f"/documents/{ids['listed-fr']}").text
    assert "Restriction lists" in page and "Beijing Yunze Technology Co., Ltd." in page
    screened = client.get("/api/screen", params={"name": "北京云泽科技有限公司"}).json()
    assert screened[0]["entry_name"] == "Beijing Yunze Technology Co., Ltd." and screened[0]["strength"] == "listed"
    assert set(screened[0]) >= {"list", "entry_name", "matched_name", "method", "score"}

    # A changed list: the Yunze entry is gone from the rule, a new party is added. Flags follow it,
    # and the first version is still there.
    changed = tmp_path / "FR_changed.xml"
    changed.write_text(FR_RULE.read_text(encoding="utf-8").replace("Beijing Yunze", "Beijing Yunzhi"), encoding="utf-8")
    second = update_lists(monitor.store, [CSL_UVL, CSL_EL, changed, ALIASES], embedder, settings.screening)
    assert second.version == 2 and second.documents == len(BUYERS)
    assert [v["version"] for v in versions(monitor.store)] == [1, 2] and active_version(monitor.store) == 2
    assert "Beijing Yunze Technology Co., Ltd." in {e.name for e in version_entries(monitor.store, 1)}
    digest = _digest(monitor, "t2")
    by_doc = {item.doc_ids[0]: item for item in digest.items}
    assert not by_doc[ids["listed-fr"]].listed
    assert [p["entry_name"] for p in by_doc[ids["unlisted"]].listed] == ["Beijing Yunzhi Technology Co., Ltd."]
    assert [p["lists_version"] for p in by_doc[ids["unlisted"]].listed] == [2]
    assert {p["entry_name"] for p in by_doc[ids["listed-alias"]].listed} == {"Spacety Co., Ltd."}


def test_a_notice_ingested_after_a_load_is_screened_at_ingest(monitor: Monitor, settings: Settings,
                                                              embedder: Embedder) -> None:
    update_lists(monitor.store, [FR_RULE], embedder, settings.screening)
    doc_id = monitor.ingest(_notice("late", "香港海贸信息技术发展有限公司")).doc_id
    records = export_records(monitor.store)
    assert records == [] or all(isinstance(r["listed_parties"], list) for r in records)
    with monitor.store.session() as session:
        from index.restricted import matches_for

        assert [m.entry_name for m in matches_for(session, [doc_id or 0])[doc_id or 0]] == []  # not on the FR rule
    update_lists(monitor.store, [FR_RULE, CSL_UVL], embedder, settings.screening)
    with monitor.store.session() as session:
        from index.restricted import matches_for

        rows = matches_for(session, [doc_id or 0])[doc_id or 0]
    assert [(r.role, r.list_code, r.entry_name, r.strength) for r in rows][:1] == [
        ("buyer", "UVL", "Hong Kong Haimao Info-Tec Development Co Ltd", "listed")]


def test_cli_update_screen_and_refusal(home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loophole.cli import app

    runner = CliRunner()
    loaded = runner.invoke(app, ["lists", "update", str(FR_RULE), str(CSL_UVL), "--no-embedding"])
    assert loaded.exit_code == 0, loaded.output
    assert "lists version 1: 23 entries from 2 files" in loaded.output
    bad = tmp_path / "csl.json"
    bad.write_text('{"results": [\n {"name": "A Co", "source": "EL"},\n {"source": "EL"}\n]}', encoding="utf-8")
    refused = runner.invoke(app, ["lists", "update", str(CSL_EL), str(bad)])
    assert refused.exit_code == 2
    assert f"{bad}:3: a record without a name" in refused.output and "unchanged" in refused.output
    shown = runner.invoke(app, ["lists", "versions", "--json"])
    assert [v["version"] for v in json.loads(shown.output)] == [1]
    screened = runner.invoke(app, ["screen", "Spacety Co Ltd", "--json"])
    assert screened.exit_code == 0, screened.output
    matches = json.loads(screened.output)
    assert matches[0]["list"] == "EL" and matches[0]["entry_name"] == "Spacety Co., Ltd."
    assert matches[0]["method"] == "exact" and matches[0]["score"] == 1.0


def test_settings_default_thresholds_are_the_fitted_ones() -> None:
    screening = load_settings(home=Path("/nonexistent")).screening
    assert (screening.fuzzy_listed, screening.transliteration_listed) == (0.90, 0.95)
