"""Detection beyond the dev-corpus gate: calibration, run-time patterns, analysts' verdicts, gates."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from extract import ExtractedPage
from index.calibration import Calibration, Sample, best_threshold, cross_validate, load_thresholds, save_calibration
from index.detect import (
    CUE_BONUS,
    PatternVectors,
    Units,
    about_mainland_cloud,
    excludes_pattern_terms,
    gate,
    language_tag,
    named_not_excluded,
    names_cues,
    names_tie_outside_exclusions,
    only_generic_types,
    sentence_evidence,
)
from index.entities import Entity, Watchlist, fold, load_watchlist
from index.feedback import FeedbackError, learned_examples, record_feedback
from index.patterns import Pattern, load_library
from loophole.config import ConfigError, Settings, read_yaml_mapping
from loophole.evaluate import evaluate
from loophole.pipeline import Monitor, RawPage, in_owners_voice
from tests.conftest import DEMO_WEB, ROOT

NEW_PATTERN = ROOT / "tests" / "fixtures" / "new_pattern"
# A tender whose decisive line is a US-cloud GPU rental (see seeds/demo/expected.json).
GPU_NOTICE = DEMO_WEB / "cggg/zygg/gkzb/202610/t20261014_3103655.htm"


def samples(pattern_id: str, scores: list[tuple[float, bool]]) -> list[Sample]:
    return [Sample(f"d{i}", pattern_id, score, True, positive) for i, (score, positive) in enumerate(scores)]


def test_threshold_goes_in_the_widest_gap_and_is_pulled_to_the_prior_when_positives_are_few() -> None:
    many = samples("p", [(0.40, False), (0.50, False), (0.70, True), (0.72, True), (0.8, True), (0.9, True),
                         (0.91, True), (0.93, True), (0.95, True), (0.97, True)])
    fitted = best_threshold(many, prior=0.62)
    assert 0.55 < fitted < 0.70            # between the last negative and the first positive
    few = samples("p", [(0.40, False), (0.95, True)])
    assert best_threshold(few, prior=0.62) < 0.70   # one page does not move the cut far


def test_a_pattern_without_positives_keeps_its_prior() -> None:
    assert best_threshold(samples("p", [(0.3, False), (0.9, False)]), prior=0.62) == 0.62


def test_cross_validation_reports_held_out_figures() -> None:
    data = samples("p", [(0.3 + 0.01 * i, False) for i in range(20)] + [(0.8 + 0.005 * i, True) for i in range(20)])
    result = cross_validate(data, {"p": 0.62})
    assert result["precision"] == 1.0 and result["recall"] == 1.0 and result["folds"] == 5


def test_calibration_for_another_library_version_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "calibration.yaml"
    save_calibration(path, Calibration(library_version="old", model_id="m", thresholds={"p": 0.5}))
    with caplog.at_level(logging.WARNING):
        assert load_thresholds([path], "new", "m") == {}
    assert "recalibrate" in caplog.text or "loophole calibrate" in caplog.text
    assert load_thresholds([path], "old", "m") == {"p": 0.5}


def test_broken_calibration_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "calibration.yaml"
    path.write_text("library_version: x\nthresholds: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="calibration.yaml"):
        load_thresholds([path], "x", "m")


def test_shipped_calibration_matches_the_shipped_library() -> None:
    """Changing seeds/patterns.yaml without recalibrating would silently drop the thresholds."""
    settings = Settings()
    library = load_library(settings.pattern_files)
    calibration = Calibration.model_validate(read_yaml_mapping(settings.calibration_file))
    assert calibration.library_version == library.version
    assert set(calibration.thresholds) == {p.id for p in library.patterns}


def test_a_pattern_limited_to_notices_does_not_fire_on_an_ad() -> None:
    pattern = Pattern(id="p-x", title="t", description="d", examples=["e"], kinds=["procurement-notice"])
    assert gate(pattern, "reseller-ad", set()) is not None
    assert gate(pattern, "procurement-notice", set()) is None
    with pytest.raises(ValueError, match="kind"):
        Pattern(id="p-y", title="t", description="d", examples=["e"], kinds=["news-commentary"])


def test_a_pattern_file_added_at_run_time_flags_its_documents(settings: Settings) -> None:
    result, _ = evaluate(NEW_PATTERN, settings, [NEW_PATTERN / "eda.yaml"])
    assert result["patterns"]["eda-cloud-access"]["recall"] == 1.0
    assert result["patterns"]["eda-cloud-access"]["precision"] == 1.0
    assert result["alert"]["fp"] == 0           # neither the domestic-EDA notice nor the news article


def test_a_dismissal_changes_a_later_decision(settings: Settings) -> None:
    body = GPU_NOTICE.read_bytes()
    monitor = Monitor(settings)
    first = monitor.ingest(RawPage(url="http://127.0.0.1/a.htm", body=body, source="t"))
    assert "gpu-cloud-rental" in first.flagged
    assert first.doc_id is not None
    record_feedback(monitor.store, first.doc_id, "dismiss", "gpu-cloud-rental", note="not evidence")
    assert learned_examples(monitor.store).counter_examples["gpu-cloud-rental"]
    monitor.close()
    later = Monitor(settings)          # a new run picks the verdict up; no file was edited
    second = later.ingest(RawPage(url="http://127.0.0.1/b.htm", body=body + b"<!-- republished -->", source="t"))
    later.close()
    assert "gpu-cloud-rental" not in second.flagged


def test_feedback_on_an_unknown_document_or_pattern_is_refused(settings: Settings) -> None:
    monitor = Monitor(settings)
    with pytest.raises(FeedbackError, match="no document"):
        record_feedback(monitor.store, 999, "confirm")
    result = monitor.ingest(RawPage(url="http://127.0.0.1/c.htm", body=GPU_NOTICE.read_bytes(), source="t"))
    assert result.doc_id is not None
    with pytest.raises(FeedbackError, match="not scored"):
        record_feedback(monitor.store, result.doc_id, "confirm", "no-such-pattern")
    monitor.close()


def test_a_unit_naming_every_cue_type_scores_higher() -> None:
    """Same similarity, but one unit names a police buyer and a US chip together: it wins by the bonus."""
    pattern = Pattern(id="p-z", title="t", description="d", examples=["e"],
                      cues=[["buyer-police"], ["export-chip", "us-brand-hardware"]])
    pv = PatternVectors(pattern, np.eye(1, 4, dtype=np.float32), np.zeros((0, 4), dtype=np.float32), [], ["e"],
                        np.zeros((0, 4), dtype=np.float32))
    texts = ["公安局采购服务器，配置英伟达T4", "公安局采购服务器"]
    units = Units(texts, [fold(t) for t in texts], [{"buyer-police", "export-chip"}, {"buyer-police"}])
    vectors = np.array([[0.6, 0.8, 0, 0], [0.6, 0.8, 0, 0]], dtype=np.float32)
    scores, _, _ = sentence_evidence(pv, units, vectors)
    assert scores[0] - scores[1] == pytest.approx(CUE_BONUS)
    assert not names_cues([], {"buyer-police"})          # a pattern without cues never gets the bonus


def test_watchlist_folds_full_width_and_traditional_and_keeps_every_alias() -> None:
    watchlist = Watchlist([Entity(id="hik", name="Hikvision", type="sanctioned-vendor", names=["Hikvision", "海康威视"])])
    hits = watchlist.find("ＨＩＫＶＩＳＩＯＮ摄像机，海康威視录像机")
    assert [(h.id, h.aliases) for h in hits] == [("hik", ("hikvision", "海康威视"))]
    assert watchlist.types_in(fold("Ｈｉｋｖｉｓｉｏｎ")) == {"sanctioned-vendor"}


def test_news_on_a_companys_own_site_is_its_press_release() -> None:
    """A vendor's newsroom reads like news (记者, "/news/") but speaks in the vendor's voice."""
    watchlist = load_watchlist(Settings().watchlist_file)
    release = ExtractedPage(text="本报讯 记者获悉", title="新闻", date=None, lang="zh", kind="news-commentary",
                            encoding="utf-8")
    assert in_owners_voice(release, "https://www.hikvision.com/cn/news/2026/1.html", watchlist).kind == "vendor-marketing"
    assert in_owners_voice(release, "https://news.example-daily.cn/hikvision.html", watchlist).kind == "news-commentary"
    assert watchlist.owner_of("https://www.cloudwalk-intl.example.sg/news/x").id == "cloudwalk"  # a regional site
    assert watchlist.owner_of("https://news.google.com/articles/x") is None    # a cloud is only its own domains


def test_a_unit_about_a_mainland_operated_cloud_is_no_evidence_of_the_us_cloud() -> None:
    library = load_library(Settings().pattern_files)
    vectors = {p.id: PatternVectors(p, np.zeros((0, 1)), np.zeros((0, 1)), [], [], np.zeros((0, 1)))
               for p in library.patterns}
    mainland = {"us-cloud", "us-ai-service", "mainland-operator"}
    assert about_mainland_cloud(vectors["us-cloud-ai-services"], mainland)
    assert not about_mainland_cloud(vectors["us-cloud-ai-services"], {"us-cloud", "us-ai-service"})
    assert not about_mainland_cloud(vectors["police-us-tech-procurement"], mainland | {"buyer-police"})


def test_generic_buyer_words_are_no_prc_buyer_on_a_page_without_a_prc_tie() -> None:
    """臺中市政府 is a city government, but Taiwan's: a generic buyer word counts only on a PRC page."""
    watchlist = load_watchlist(Settings().watchlist_file)
    taiwan = watchlist.find("臺中市政府資訊中心採購 Microsoft Azure OpenAI Service")
    assert only_generic_types(taiwan) == {"buyer-state"}
    named = watchlist.find("中国科学院某研究所 市政府 Azure OpenAI")
    assert only_generic_types(named) == set()


def test_a_vendor_named_to_be_ruled_out_is_not_its_platform() -> None:
    watchlist = load_watchlist(Settings().watchlist_file)
    for text in ("ndaa-compliant hardware list; no hikvision, dahua or huawei devices certified",
                 "unlike cameras from hikvision or dahua, our platform runs on aws",
                 "平台不兼容海康、大华设备"):
        assert not named_not_excluded(text, watchlist.mentions(text, "sanctioned-vendor")), text
    for text in ("hikcentral connect is deployed on microsoft azure; no setup fee",
                 "海康威视视频云平台部署于azure东南亚区域"):
        assert named_not_excluded(text, watchlist.mentions(text, "sanctioned-vendor")), text


def test_a_procurement_agency_is_not_a_reseller_cue() -> None:
    """Every notice names its 采购代理机构; the longest alias wins, so its 代理 is not read as a channel."""
    types = load_watchlist(Settings().watchlist_file).types_in(fold("采购代理机构：某招标有限公司"))
    assert "channel-cue" not in types and "reseller-cue" not in types


def test_an_exclusion_counts_only_when_it_rules_out_what_the_pattern_is_about() -> None:
    """"不接受英伟达" rules the chip out; a line item that also says the buyer's name must not appear on
    the account (a reseller's arrangement) still names the service it buys."""
    pattern = Pattern(id="p-n", title="t", description="d", examples=["e"], keywords=["bedrock", "英伟达"],
                      cues=[["us-ai-service"]])
    pv = PatternVectors(pattern, np.eye(1, 4, dtype=np.float32), np.zeros((0, 4), dtype=np.float32),
                        ["bedrock", "英伟达"], ["e"], np.zeros((0, 4), dtype=np.float32))
    types_in = lambda text: {"us-ai-service"} if "azure openai" in text else set()  # noqa: E731
    assert excludes_pattern_terms(pv, "本项目不接受英伟达GPU，须采用国产芯片", types_in)
    assert excludes_pattern_terms(pv, "服务商不得使用azure openai", types_in)
    assert not excludes_pattern_terms(pv, "经bedrock调用claude模型，采购人名称不得出现在账号资料中", types_in)
    assert not excludes_pattern_terms(pv, "经bedrock调用claude模型", types_in)


def test_traditional_chinese_is_no_prc_tie_by_its_script() -> None:
    """A Taiwan GPU cloud's page is Chinese but not PRC; its 國內 ("domestic") means Taiwan."""
    taiwan = ["玉山雲於新竹與台中設有資料中心，提供 H100 雲端主機，協助台灣企業與大學研究團隊訓練模型。資料儲存於國內機房。"]
    mainland = ["本项目为某研究院租用境外GPU云服务器，部署于新加坡区域，用于大模型训练。"]
    assert language_tag("zh", taiwan) == "zh-hant"
    assert language_tag("zh", mainland) == "zh"
    assert language_tag("en", ["Hikvision on Azure"]) == "en"
    assert "prc-tie" not in load_watchlist(Settings().watchlist_file).types_in(fold(taiwan[0]))


def test_a_prc_tie_named_only_in_an_exclusion_is_no_tie() -> None:
    """A US or Singapore GPU cloud's compliance line names China to rule it out."""
    excluded = ["we do not provide services to customers in china or macau."]
    named = ["gpu clusters for ai teams in mainland china, billed in rmb."]
    units = Units(excluded, excluded, [{"prc-tie"}])
    assert not names_tie_outside_exclusions(units)
    assert names_tie_outside_exclusions(Units(excluded + named, excluded + named, [{"prc-tie"}, {"prc-tie"}]))
