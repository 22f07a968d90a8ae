"""Detection beyond the quality gates: the decision model, text models, run-time patterns, verdicts, rules."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sqlalchemy import select

from extract import ExtractedPage
from ground.config import ConfigError, Settings, read_yaml_mapping
from index import textmodel
from index.crossval import best_generic_cut, f1_at, leave_group_out, leave_new_pattern_out, tuned_cuts
from index.decision import (
    FEATURES,
    GENERIC_FEATURES,
    LOG_ODDS,
    NEW_PATTERN_ONLY,
    DecisionModel,
    Recalibration,
    Sample,
    Stage,
    StagePage,
    fit,
    fit_recalibration,
    fit_stage,
    load_decision,
    read_decision,
    save_decision,
    untrained,
    weighed_on,
)
from index.detect import (
    Detector,
    PatternVectors,
    Units,
    about_mainland_cloud,
    excludes_pattern_terms,
    gate,
    language_tag,
    named_not_excluded,
    names_tie_outside_exclusions,
    only_generic_types,
)
from index.embed import get_embedder
from index.endpoints import serves_itself, third_party_endpoints
from index.entities import Entity, Watchlist, fold, load_watchlist
from index.evidence import REAL_TEXT, PatternProfile, build_profile, load_background, type_cover
from index.feedback import FeedbackError, learned_examples, record_feedback
from index.patterns import Pattern, load_library
from index.store import Detection
from index.textmodel import (
    NEW_PATTERN_EVIDENCE,
    REPORTING,
    Document,
    TextModels,
    example_text_model,
    fit_text_models,
    out_of_fold_scores,
)
from loophole.evaluate import evaluate
from loophole.pipeline import Monitor, RawPage, in_owners_voice, with_usable_stages
from tests.conftest import DEMO_WEB, ROOT

NEW_PATTERN = ROOT / "tests" / "fixtures" / "new_pattern"
# A tender whose decisive line is a US-cloud GPU rental (see seeds/demo/expected.json).
GPU_NOTICE = DEMO_WEB / "cggg/zygg/gkzb/202610/t20261014_3103655.htm"


def _samples(rng: np.random.Generator, pattern_id: str, group: str, count: int = 60) -> list[Sample]:
    """Evidence pages sit higher on the evidence features and lower on the reporting cues."""
    out = []
    for i in range(count):
        positive = i % 3 == 0
        features = {name: float(rng.normal(1.0 if positive else 0.0, 0.5)) for name in FEATURES}
        features["genre_news"] = float(rng.normal(0.0 if positive else 1.0, 0.5))
        out.append(Sample(f"{group}:{i}", pattern_id, features, positive, group))
    return out


@pytest.fixture(scope="module")
def toy_samples() -> list[Sample]:
    rng = np.random.default_rng(7)
    return [s for group in ("w1", "w2", "w3") for pid in ("p-a", "p-b") for s in _samples(rng, pid, group)]


def test_decision_weights_are_monotone_and_patterns_with_pages_get_their_own(toy_samples: list[Sample]) -> None:
    model = fit(toy_samples, "m")
    assert set(model.patterns) == {"p-a", "p-b"}     # 30 evidence pages each: over MIN_SUPPORT
    news = FEATURES.index("genre_news")
    assert model.generic.coefficients[news] <= 0 and all(w.coefficients[news] <= 0 for w in model.patterns.values())
    assert model.generic.coefficients[FEATURES.index("text")] == 0    # only patterns with pages have text models
    strong = {name: 1.5 for name in FEATURES} | {"genre_news": -0.5}
    weak = {name: -0.5 for name in FEATURES} | {"genre_news": 1.5}
    for pid in ("p-a", "p-new"):                    # a pattern of its own, and one decided by the generic weights
        assert model.probability(pid, strong) > 0.9 > 0.1 > model.probability(pid, weak)
    assert "genre_news" in model.contributions("p-a", weak)


def test_real_pages_reweigh_a_patterns_own_features_and_nothing_else(toy_samples: list[Sample]) -> None:
    """Where written pages gave a feature no weight (an API address on the page's own site) and real
    pages show it decides, the real pages move that weight; the generic weights and a pattern with
    too few real evidence pages stay as they were."""
    model = fit(toy_samples, "m")
    rng = np.random.default_rng(11)
    real = []
    for i in range(90):
        positive = i % 3 == 0
        features = {name: float(rng.normal(0.5, 0.5)) for name in FEATURES} | {"own_endpoint": float(positive)}
        real.append(Sample(f"real:{i}", "p-a", features, positive, "real"))
    real += [Sample(f"real-b:{i}", "p-b", {"own_endpoint": 1.0}, i == 0, "real") for i in range(20)]
    weighed = weighed_on(model, real)
    endpoint = FEATURES.index("own_endpoint")
    assert weighed.patterns["p-a"].coefficients[endpoint] > model.patterns["p-a"].coefficients[endpoint] + 0.5
    assert weighed.patterns["p-b"] == model.patterns["p-b"] and weighed.generic == model.generic


def test_new_patterns_pages_fit_the_generic_weights_and_move_no_shipped_pattern(toy_samples: list[Sample]) -> None:
    """Pages written for patterns given as YAML files fit the generic weights alone, each counted its weight;
    the fitted patterns' own weights and the scale stay what the fitted patterns' pages make them."""
    rng = np.random.default_rng(5)
    new = []
    for pid in ("y-1", "y-2", "y-3"):
        for i in range(40):
            positive = i % 3 == 0
            # On a new pattern's pages the example-text feature decides and the page-text feature is absent.
            features = {"example_text": float(rng.normal(1.0 if positive else -1.0, 0.3)),
                        "breadth": float(rng.normal(0.0, 1.0))}
            new.append(Sample(f"{pid}:{i}", pid, features, positive, pid, 3.0 if i % 5 == 0 else 1.0))
    before, after = fit(toy_samples, "m"), fit(toy_samples, "m", new_patterns=new)
    shared = [i for i, name in enumerate(FEATURES) if name not in NEW_PATTERN_ONLY]   # weighed by fitted patterns
    assert after.patterns == before.patterns
    assert [(after.mean[i], after.scale[i]) for i in shared] == [(before.mean[i], before.scale[i]) for i in shared]
    assert all(weights.coefficients[FEATURES.index(name)] == 0.0 for weights in after.patterns.values()
               for name in NEW_PATTERN_ONLY)
    example_text, breadth = FEATURES.index("example_text"), FEATURES.index("breadth")
    assert after.generic.coefficients[example_text] > before.generic.coefficients[example_text]
    assert after.generic.coefficients[example_text] > 5 * abs(after.generic.coefficients[breadth])
    held = leave_new_pattern_out(toy_samples, new, "m")
    assert set(held) == {"y-1", "y-2", "y-3"} and all(len(scored) == 40 for scored in held.values())
    assert all(f1_at(scored, best_generic_cut(held)) > 0.9 for scored in held.values())
    counted = [replace(sample, weight=10.0) if not sample.positive and sample.doc.endswith("1") else sample
               for sample in new]
    assert fit(toy_samples, "m", new_patterns=counted).generic != after.generic


def test_the_new_pattern_evidence_model_is_weighed_by_new_patterns_alone(toy_samples: list[Sample]) -> None:
    """The text model of evidence no one pattern owns is fitted on new patterns' pages: only the generic weights
    fitted on them weigh it, on its spread over their pages; the shipped patterns' weights and scale do not move."""
    rng = np.random.default_rng(7)
    new = [Sample(f"{pid}:{i}", pid, {"evidence_text": float(rng.normal(3.0 if i % 3 == 0 else -3.0, 1.0)),
                                      "breadth": float(rng.normal(0.0, 1.0))}, i % 3 == 0, pid)
           for pid in ("y-1", "y-2") for i in range(30)]
    before, after = fit(toy_samples, "m"), fit(toy_samples, "m", new_patterns=new)
    column = FEATURES.index("evidence_text")
    assert after.patterns == before.patterns and before.generic.coefficients[column] == 0.0
    assert after.generic.coefficients[column] > 1.0
    assert after.scale[column] == pytest.approx(np.std([s.features["evidence_text"] for s in new]), abs=1e-4)
    shared = [i for i, name in enumerate(FEATURES) if name not in NEW_PATTERN_ONLY]
    assert [(after.mean[i], after.scale[i]) for i in shared] == [(before.mean[i], before.scale[i]) for i in shared]
    held = leave_new_pattern_out(toy_samples, new, "m")
    assert all(f1_at(scored, best_generic_cut(held)) > 0.9 for scored in held.values())


def test_a_text_target_added_through_the_same_vocabulary_leaves_the_others_and_holds_out_by_group() -> None:
    offer = "军工院所欢迎咨询，经香港转运，最终用户不对外提供，可改标分批发货。"
    civil = "授权代理商正规渠道供货，民用客户，如实申报最终用户，不接受转口。"
    docs = [Document(f"{offer if i % 2 else civil} 型号{i}", frozenset({f"p{i % 3}"}) if i % 2 else frozenset(),
                     f"p{i % 3}") for i in range(30)]
    models = fit_text_models(docs, ["p1"])
    added = models.with_target(NEW_PATTERN_EVIDENCE, docs)
    assert added.scores(offer)["p1"] == models.scores(offer)["p1"] and added.vocabulary == models.vocabulary
    assert added.scores(offer)[NEW_PATTERN_EVIDENCE] > 0 > added.scores(civil)[NEW_PATTERN_EVIDENCE]
    held = models.out_of_fold(NEW_PATTERN_EVIDENCE, docs)
    without_p0 = models.with_target(NEW_PATTERN_EVIDENCE, [d for d in docs if d.group != "p0"])
    assert held[0] == without_p0.scores(docs[0].text)[NEW_PATTERN_EVIDENCE] != added.scores(docs[0].text)[NEW_PATTERN_EVIDENCE]
    with pytest.raises(ConfigError, match="both evidence and pages without it"):
        models.with_target(NEW_PATTERN_EVIDENCE, [d for d in docs if d.patterns])


def test_held_out_figures_and_the_generic_cut(toy_samples: list[Sample]) -> None:
    figures = leave_group_out(toy_samples, "m")
    assert figures["precision"] > 0.8 and figures["recall"] > 0.8 and 0 <= figures["ece"] < 0.2
    scored = {"p": [(0.9, True), (0.7, False), (0.65, False), (0.95, True)]}
    assert best_generic_cut(scored) == 0.75          # between the near misses and the evidence


def test_cuts_tuned_on_pages_that_read_weaker() -> None:
    """Real pages score lower than written ones: their best cut can sit below the default."""
    weak = [(0.42, True), (0.38, True), (0.45, True), (0.36, True), (0.6, True), (0.2, False), (0.1, False)]
    assert tuned_cuts({"p": weak, "few": weak[:3]}, lambda pid: 0.5) == {"p": 0.35}
    assert tuned_cuts({"p": [(0.9, True)] * 5 + [(0.1, False)]}, lambda pid: 0.5) == {}   # the default is best


def test_a_decision_file_for_another_model_keeps_only_its_generic_weights(
        tmp_path: Path, toy_samples: list[Sample], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "decision.yaml"
    save_decision(path, fit(toy_samples, "model-a"))
    assert load_decision([path], "model-a").patterns                                   # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        other = load_decision([path], "model-b")
    assert other is not None and other.patterns == {} and "generic" in caplog.text
    assert load_decision([tmp_path / "missing.yaml"], "m") is None


def test_broken_decision_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "decision.yaml"
    path.write_text("model_id: x\nfeatures: [1, 2]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="decision.yaml"):
        load_decision([path], "x")


def test_shipped_decision_matches_the_features_and_the_library() -> None:
    """The shipped model was fitted on these features, for the default embedding model, for every
    shipped pattern; changing the features without refitting would silently fall back."""
    settings = Settings()
    decision = DecisionModel.model_validate(read_yaml_mapping(settings.decision_file))
    assert decision.features == list(FEATURES)
    assert set(decision.patterns) == {p.id for p in load_library(settings.pattern_files).patterns}
    assert decision.cross_validation["held_out_by_folder_precision"] >= 0.95
    models = TextModels.load(settings.text_model_file)
    # A pattern with a stage reads its real-page text model (index.decision.Stage), shipped beside the others.
    assert set(models.weights) == set(decision.patterns) | {REPORTING, NEW_PATTERN_EVIDENCE} | {
        textmodel.real_target(pid) for pid in decision.stages}
    assert set(GENERIC_FEATURES) < set(FEATURES)
    # The generic path (patterns given as YAML files) weighs the new-pattern evidence model; no shipped pattern does.
    column = FEATURES.index("evidence_text")
    assert decision.generic.coefficients[column] > 0
    assert all(weights.coefficients[column] == 0.0 for weights in decision.patterns.values())


def test_text_models_round_trip_and_out_of_fold_scores_are_honest(tmp_path: Path) -> None:
    relay = "本站提供 GPT 与 Claude 接口中转，支付宝充值，国内直连，倍率 0.5，令牌在控制台创建。"
    news = "据报道，多家 API 中转站近日跑路，记者采访了受影响的开发者，律师提醒注意风险。"
    docs = [Document(f"{relay} 编号{i}" if i % 2 else f"{news} 编号{i}", frozenset({"r"}) if i % 2 else frozenset(),
                     f"w{i % 3}") for i in range(24)]
    models = fit_text_models(docs, ["r"])
    assert models.scores(relay)["r"] > 0 > models.scores(news)["r"]
    path = tmp_path / "text.npz"
    models.save(path)
    assert TextModels.load(path).scores(relay) == pytest.approx(models.scores(relay))
    held = out_of_fold_scores(docs, ["r"])
    assert all(("r" in s) for s in held) and len(held) == len(docs)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ConfigError, match="bad.npz"):
        TextModels.load(tmp_path / "bad.npz")


def test_the_vocabulary_is_the_same_whatever_the_order_and_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text models refitted elsewhere must come out the same: n-grams tied at the cut-off are kept by the n-gram
    itself, not by the order of the pages or how the CPU's sort breaks ties (sklearn's max_features does neither)."""
    pages = ["本站提供 GPT 中转，支付宝充值", "国内直连 Claude 接口", "支付宝 充值 GPT", "Claude 国内 中转"] * 3
    monkeypatch.setattr("index.textmodel.MAX_FEATURES", 12)
    fitted = [textmodel._fitted_vectorizer(order) for order in (pages, pages[::-1], sorted(pages))]
    assert all(v.vocabulary_ == fitted[0].vocabulary_ for v in fitted) and len(fitted[0].vocabulary_) == 12
    counts = CountVectorizer(analyzer="char_wb", ngram_range=textmodel.NGRAMS, min_df=2).fit(pages)
    totals = dict(zip(counts.get_feature_names_out(), np.asarray(counts.transform(pages).sum(axis=0)).ravel(),
                      strict=True))
    cut = min(totals[gram] for gram in fitted[0].vocabulary_)
    tied = sorted(gram for gram, total in totals.items() if total == cut)
    kept = [gram for gram in tied if gram in fitted[0].vocabulary_]
    assert kept == tied[:len(kept)] and len(kept) < len(tied)     # the first of the tied n-grams, and some left out


def test_a_patterns_own_text_model_is_on_its_own_scale() -> None:
    """Fitted on nothing but the author's sentences; 0 where the counter-examples score, 1 where the examples do."""
    examples = ["H100 八卡整机现货，深圳发货，含税开票。", "H800 渠道货现货，香港交货，欢迎同行拿货。",
                "In stock: DGX H100 systems shipped to Shenzhen via Hong Kong.", "A800 整卡出售，北京自提，微信报价。"]
    counters = ["RTX 4090 游戏显卡现货，全国包邮。", "昇腾910B服务器现货，华为授权。",
                "据报道，海关查获一批走私GPU。", "GPU云服务器租用，新加坡节点按月计费。"]
    model = example_text_model(examples, counters, ["首页 关于我们 联系我们", "Copyright 2025"], ["Azure OpenAI 企业号代开"])
    assert model is not None
    assert model.score("全新 H100 整机现货，可开专票，深圳仓发货") > model.score("RTX 4090 显卡包邮，京东自营")
    assert example_text_model(examples[:1], counters, [], []) is None


def test_a_pattern_whose_examples_cannot_be_told_from_its_near_misses_is_named(
        caplog: pytest.LogCaptureFixture) -> None:
    """The EDA pattern's 4 examples, each held out, score below its counter-examples: its author is told
    so when the detector is built, while the shipped patterns (26-60 examples) raise no such warning."""
    settings = Settings()
    library = load_library([*settings.pattern_files, NEW_PATTERN / "eda.yaml"])
    embedder = get_embedder(settings.embedding.model, settings.embedding.batch_size)
    with caplog.at_level(logging.WARNING, logger="index.detect"):
        detector = Detector(library, embedder, untrained(embedder.model_id),
                            background=load_background(settings.background_file))
    models = {pv.pattern.id: pv.text_model for pv in detector.vectors}
    assert all(m is not None for m in models.values())
    assert [pid for pid, m in models.items() if m is not None and not m.separates] == ["eda-cloud-access"]
    assert "pattern eda-cloud-access: with each of its 4 examples held out" in caplog.text
    assert "reseller-intermediary" not in caplog.text


def test_a_second_detector_reuses_the_reference_vectors_and_cannot_change_them() -> None:
    """Every labelled folder scored builds a detector; the background and the examples are embedded once
    per process, the same arrays as a fresh embedding of the same list, and shared read-only."""
    settings = Settings()
    library = load_library(settings.pattern_files)
    embedder = get_embedder(settings.embedding.model, settings.embedding.batch_size)
    background = load_background(settings.background_file)
    first, second = (Detector(library, embedder, untrained(embedder.model_id), background=background)
                     for _ in range(2))
    assert second.vectors[0].examples is first.vectors[0].examples
    assert np.array_equal(first.vectors[0].examples, embedder.encode(library.patterns[0].examples))
    with pytest.raises(ValueError, match="read-only"):
        first.vectors[0].examples[0, 0] = 1.0


def test_a_profile_scales_similarity_by_the_patterns_own_examples() -> None:
    examples = np.eye(3, 8, dtype=np.float32) * 0.6 + 0.5
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    background = -examples[:1]
    profile = build_profile(examples, examples[:1] * 0.9, background, [frozenset({"a", "b"}), frozenset({"a"})])
    assert profile.positive_level > profile.background_level
    assert profile.normalise(profile.positive_level) == pytest.approx(1.0)
    assert type_cover(profile, {"a"}) == pytest.approx(0.75)          # half of one example, all of the other
    assert type_cover(PatternProfile((), 1.0, 0.0), {"a"}) == 0.0


def test_a_pattern_limited_to_notices_does_not_fire_on_an_ad() -> None:
    pattern = Pattern(id="p-x", title="t", description="d", examples=["e"], kinds=["procurement-notice"])
    assert gate(pattern, "reseller-ad", set()) is not None
    assert gate(pattern, "procurement-notice", set()) is None
    with pytest.raises(ValueError, match="kind"):
        Pattern(id="p-y", title="t", description="d", examples=["e"], kinds=["news-commentary"])
    with pytest.raises(ValueError):
        Pattern(id="p-z", title="t", description="d", examples=["e"], threshold=1.5)   # a probability


def test_a_pattern_file_added_at_run_time_flags_its_documents(settings: Settings) -> None:
    result, outcomes = evaluate(NEW_PATTERN, settings, [NEW_PATTERN / "eda.yaml"])
    assert result["patterns"]["eda-cloud-access"]["recall"] == 1.0
    assert result["alert"]["fp"] == 0           # neither the domestic-EDA notice nor the news article
    flagged = [o for o in outcomes if "eda-cloud-access" in o.predicted]
    assert flagged and all("generic weights" in o.evidence["eda-cloud-access"] for o in flagged)


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


def test_an_alerts_score_is_a_probability_with_its_reasons(settings: Settings) -> None:
    monitor = Monitor(settings)
    result = monitor.ingest(RawPage(url="http://127.0.0.1/p.htm", body=GPU_NOTICE.read_bytes(), source="t"))
    assert result.doc_id is not None
    with monitor.store.session() as session:
        rows = list(session.scalars(select(Detection).where(Detection.doc_id == result.doc_id)))
        assert all(0.0 <= row.score <= 1.0 for row in rows)
        reasons = next(row.reasons for row in rows if row.pattern_id == "gpu-cloud-rental")
    monitor.close()
    assert set(reasons["features"]) == set(FEATURES) and reasons["weights"] == "own"
    assert reasons["evidence"] and reasons["contributions"]


def test_feedback_on_an_unknown_document_or_pattern_is_refused(settings: Settings) -> None:
    monitor = Monitor(settings)
    with pytest.raises(FeedbackError, match="no document"):
        record_feedback(monitor.store, 999, "confirm")
    result = monitor.ingest(RawPage(url="http://127.0.0.1/c.htm", body=GPU_NOTICE.read_bytes(), source="t"))
    assert result.doc_id is not None
    with pytest.raises(FeedbackError, match="not scored"):
        record_feedback(monitor.store, result.doc_id, "confirm", "no-such-pattern")
    monitor.close()


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
    own = in_owners_voice(release, "https://www.hikvision.com/cn/news/2026/1.html", watchlist)
    assert own.kind == "vendor-marketing" and own.own_site
    assert in_owners_voice(release, "https://news.example-daily.cn/hikvision.html", watchlist).kind == "news-commentary"
    assert watchlist.owner_of("https://www.cloudwalk-intl.example.sg/news/x").id == "cloudwalk"  # a regional site
    assert watchlist.owner_of("https://news.google.com/articles/x") is None    # a cloud is only its own domains


def test_a_providers_own_docs_are_the_providers_voice_and_a_marketplace_listing_is_not() -> None:
    """Official docs name every model a relay names: served from the provider, they are its voice
    (provider_site), not a seller's; a marketplace listing on the cloud's host is a third party's."""
    watchlist = load_watchlist(Settings().watchlist_file)
    docs = ExtractedPage(text="使用 API 密钥调用 Claude。", title="文档", date=None, lang="zh", kind="other",
                         encoding="utf-8")
    official = in_owners_voice(docs, "https://platform.claude.com/docs/zh-CN/api/overview", watchlist)
    assert official.provider_site and not official.own_site
    listing = in_owners_voice(docs, "https://aws.amazon.com/marketplace/pp/prodview-abc123", watchlist)
    assert not listing.provider_site and not listing.own_site
    assert in_owners_voice(docs, "https://www.hikvision.com/cn/solutions/", watchlist).own_site


def test_a_relays_endpoint_is_told_from_the_official_one_and_from_placeholders() -> None:
    providers = load_watchlist(Settings().watchlist_file).provider_domains
    relay = "把 base_url 改成 https://api.relay-a.cn/v1 ，令牌在控制台创建。"
    assert third_party_endpoints(relay, providers) == ["api.relay-a.cn/v1"]
    assert third_party_endpoints('ANTHROPIC_BASE_URL="https://code.relay-b.top"', providers) == ["code.relay-b.top"]
    not_relays = ["官方地址 https://api.openai.com/v1/chat/completions", "base_url: https://api.anthropic.com",
                  "自行部署后访问 http://localhost:3000/v1", "base_url = https://your-domain.com/v1",
                  "源码见 https://github.com/songquanpeng/one-api", "阅读原文 https://news.relay-c.cn/2026/post"]
    assert [third_party_endpoints(text, providers) for text in not_relays] == [[]] * len(not_relays)
    # The relay's docs give its own address; a review quoting it gives someone else's.
    assert serves_itself("https://docs.relay-a.cn/quickstart", ["api.relay-a.cn/v1"])
    assert not serves_itself("https://blog.reviewer.com/relays", ["api.relay-a.cn/v1"])


def _vectors(pattern: Pattern, example_types: list[frozenset[str]], keywords: list[str] = ()) -> PatternVectors:
    empty = np.zeros((0, 4), dtype=np.float32)
    return PatternVectors(pattern, np.eye(1, 4, dtype=np.float32), empty, list(keywords), ["e"], empty,
                          PatternProfile(tuple(example_types), 1.0, 0.0))


def test_a_unit_about_a_mainland_operated_cloud_is_no_evidence_of_the_us_cloud() -> None:
    pattern = Pattern(id="p-c", title="t", description="d", examples=["e"])
    about_clouds = _vectors(pattern, [frozenset({"us-cloud", "us-ai-service"})])
    about_police = _vectors(pattern, [frozenset({"buyer-police", "export-chip"})])
    mainland = {"us-cloud", "us-ai-service", "mainland-operator"}
    assert about_mainland_cloud(about_clouds, mainland)
    assert not about_mainland_cloud(about_clouds, {"us-cloud", "us-ai-service"})
    assert not about_mainland_cloud(about_police, mainland | {"buyer-police"})


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
    pattern = Pattern(id="p-n", title="t", description="d", examples=["e"], keywords=["bedrock", "英伟达"])
    pv = _vectors(pattern, [frozenset({"us-ai-service"})], ["bedrock", "英伟达"])
    types_in = lambda text: {"us-ai-service"} if "azure openai" in text else set()  # noqa: E731
    assert excludes_pattern_terms(pv, "本项目不接受英伟达GPU，须采用国产芯片", types_in)
    assert excludes_pattern_terms(pv, "服务商不得使用azure openai", types_in)
    assert not excludes_pattern_terms(pv, "经bedrock调用claude模型，采购人名称不得出现在账号资料中", types_in)
    assert not excludes_pattern_terms(pv, "经bedrock调用claude模型", types_in)


def test_hiding_the_buyer_or_a_procedural_line_under_the_title_is_no_exclusion() -> None:
    """Round 12 (docs/generic-path-rounds-2026-12-07.md): a body line's procedural negation joined under a title
    that names the service, and a clause that hides the end user from the US provider, were read as the pattern
    ruled out, and real evidence was lost (a tender that says the end user must not be shown on the account)."""
    pattern = Pattern(id="p-n", title="t", description="d", examples=["e"], keywords=["bedrock", "aws"])
    pv = _vectors(pattern, [frozenset({"us-cloud"})], ["bedrock", "aws"])
    types_in = lambda text: set()  # noqa: E731
    assert not excludes_pattern_terms(pv, "aws ground station测控服务采购公告 | 本项目不接受联合体投标", types_in)
    assert not excludes_pattern_terms(pv, "经aws开通bedrock，最终用户不向aws披露", types_in)
    assert not excludes_pattern_terms(pv, "bedrock access via aws: their name must not appear anywhere", types_in)
    assert excludes_pattern_terms(pv, "本项目不得使用aws或其他境外云服务", types_in)
    assert excludes_pattern_terms(pv, "aws服务采购公告 | 系统不得调用bedrock", types_in)


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


def test_recalibration_changes_the_number_shown_and_not_which_pages_alert(toy_samples: list[Sample]) -> None:
    """On real pages the probabilities ran high in the middle; a recalibration fitted on such pages (slope and
    offset on the log-odds) lowers what a reader sees, maps the cut the same way, and so alerts on the same pages."""
    model = fit(toy_samples, "m")
    rng = np.random.default_rng(3)
    raw = rng.uniform(0.01, 0.99, 4000)
    worth = 1 / (1 + np.exp(-(0.5 * np.log(raw / (1 - raw)) - 1.0)))      # what such scores were worth
    shift = fit_recalibration(list(zip(raw.tolist(), (rng.uniform(size=4000) < worth).tolist(), strict=True)))
    assert shift.slope == pytest.approx(0.5, abs=0.08) and shift.offset == pytest.approx(-1.0, abs=0.12)
    shown = model.model_copy(update={"recalibration": {"p-a": shift}})
    pages = [{name: float(v) for name, v in zip(FEATURES, row, strict=True)}
             for row in rng.normal(0.3, 1.0, (300, len(FEATURES)))]
    assert shown.cut_for("p-a") < model.cut_for("p-a") and shown.cut_for("p-b") == model.cut_for("p-b")
    for features in pages:
        assert (shown.probability("p-a", features) >= shown.cut_for("p-a")) == \
            (model.probability("p-a", features) >= model.cut_for("p-a"))
        assert shown.probability("p-b", features) == model.probability("p-b", features)
    middle = [f for f in pages if 0.3 < model.probability("p-a", f) < 0.8]
    assert middle and all(shown.probability("p-a", f) < model.probability("p-a", f) for f in middle)
    raw_shares, shown_shares = model.contributions("p-a", pages[0]), shown.contributions("p-a", pages[0])
    for name, share in shown_shares.items():                 # "why it fired" adds up to the log-odds shown
        assert share == pytest.approx(shift.slope * raw_shares.get(name, 0.0), abs=0.006)
    assert shown.generic_only().recalibration == {} and shown.without_recalibration().recalibration == {}


def test_recalibration_refuses_pages_that_cannot_teach_it(tmp_path: Path) -> None:
    """One class only, scores that separate perfectly, scores that rank backwards: a clear error, nothing fitted;
    and a decision file whose recalibration slope is not positive is refused when read."""
    for pairs in ([(0.2, False), (0.7, False)], [(0.1, False), (0.2, False), (0.8, True), (0.9, True)],
                  [(0.9, False), (0.8, False), (0.3, False), (0.1, True), (0.2, True), (0.85, True)]):
        with pytest.raises(ConfigError):
            fit_recalibration(pairs)
    model = untrained("m")
    path = tmp_path / "decision.yaml"
    save_decision(path, model.model_copy(update={"recalibration": {"p-a": Recalibration(slope=0.6, offset=-0.6)}}))
    assert read_decision(path).recalibration["p-a"].slope == 0.6
    path.write_text(path.read_text(encoding="utf-8").replace("slope: 0.6", "slope: -0.6"), encoding="utf-8")
    with pytest.raises(ConfigError, match="recalibration"):
        read_decision(path)


def test_a_stage_decides_above_its_floor_and_leaves_the_rest_to_the_weights(toy_samples: list[Sample],
                                                                            tmp_path: Path) -> None:
    """A stage (log-odds and the real-page text logit) gives the shown probability and the cut where the weights
    leave a page some chance; below its floor the weights' rescaled probability stands, so such pages never alert.
    "Why it fired" names the stage's own input; a refit or the generic weights drop it; a bad file is refused."""
    model = fit(toy_samples, "m")
    stage = Stage(inputs=[LOG_ODDS, REAL_TEXT], mean=[0.0, 0.0], scale=[2.0, 1.0], coefficients=[1.0, 2.0],
                  intercept=-0.5, cut=0.6)
    staged = model.model_copy(update={"stages": {"p-a": stage}})
    rng = np.random.default_rng(5)
    for row in rng.normal(0.2, 1.2, (200, len(FEATURES))):
        features = {name: float(v) for name, v in zip(FEATURES, row, strict=True)} | {REAL_TEXT: float(row[0])}
        z = model.log_odds("p-a", features)
        expected = stage.probability(z, features) if stage.applies(z) else model.probability("p-a", features)
        assert staged.probability("p-a", features) == pytest.approx(expected)
        assert staged.probability("p-b", features) == model.probability("p-b", features)
        if not stage.applies(z):
            assert staged.probability("p-a", features) < staged.cut_for("p-a")
    assert staged.cut_for("p-a") == 0.6 and staged.cut_for("p-b") == model.cut_for("p-b")
    strong = {name: 1.0 for name in FEATURES} | {REAL_TEXT: 3.0}
    assert staged.contributions("p-a", strong)[REAL_TEXT] == pytest.approx(2.0 * 3.0, abs=0.01)
    assert staged.generic_only().stages == {} and staged.without_recalibration().stages == {}
    path = tmp_path / "decision.yaml"
    save_decision(path, staged)
    assert read_decision(path).stages["p-a"] == stage
    path.write_text(path.read_text(encoding="utf-8").replace("- real_text", "- other"), encoding="utf-8")
    assert read_decision(path).stages["p-a"].inputs == [LOG_ODDS, "other"]
    path.write_text(path.read_text(encoding="utf-8").replace("- log_odds", "- text"), encoding="utf-8")
    with pytest.raises(ConfigError, match="stages"):
        read_decision(path)


def test_a_stage_is_fitted_only_where_it_applies_and_needs_both_kinds_of_page() -> None:
    rng = np.random.default_rng(11)
    pages = [StagePage(float(z), {REAL_TEXT: float(t + 2 * truth)}, bool(truth))
             for z, t, truth in zip(rng.normal(0, 2, 400), rng.normal(0, 1, 400), rng.uniform(size=400) < 0.3,
                                    strict=True)]
    stage = fit_stage(pages, [REAL_TEXT], "toy")
    assert stage.pages == sum(1 for page in pages if stage.applies(page.log_odds)) < len(pages)
    assert stage.coefficients[1] > 0 and stage.inputs == [LOG_ODDS, REAL_TEXT] and stage.source == "toy"
    with pytest.raises(ConfigError, match="both"):
        fit_stage([replace(page, truth=False) for page in pages], [REAL_TEXT])


def test_a_stage_whose_text_model_is_not_loaded_gives_way_to_the_weights(caplog: pytest.LogCaptureFixture) -> None:
    """The shipped reseller stage reads its real-page text model; where the loaded text models lack it (a data
    directory's own, from `calibrate`), the stage is dropped with a warning rather than fed a logit of 0."""
    decision, models = read_decision(Settings().decision_file), TextModels.load(Settings().text_model_file)
    assert decision.stages and with_usable_stages(decision, models).stages == decision.stages
    without = TextModels(models.vocabulary, models.idf,
                         {target: weights for target, weights in models.weights.items()
                          if not target.startswith(textmodel.REAL_PAGES)})
    with caplog.at_level(logging.WARNING, logger="loophole.pipeline"):
        assert with_usable_stages(decision, without).stages == {}
    assert "recalibrate --stage" in caplog.text
    assert with_usable_stages(decision, None).stages == {}
