"""``loophole calibrate`` end to end on small labelled folders: the page text models and the decision
are fitted and written, the patterns' own weights are refitted on a folder given with ``--weigh``, cuts
are chosen on one given with ``--tune-cuts``, a folder given for both is scored once, the refit is also
scored held out by ``--weigh`` folder, ``--text-only`` folders teach the text models only, and
``--new-pattern`` folders fit the generic weights. One calibration with every option serves the tests
that read it (a calibration takes half a minute here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import loophole.calibrate
from ground.config import ConfigError, Settings
from index.crossval import CUTS
from index.decision import DecisionModel, Recalibration, Sample, Stage, load_decision, read_decision
from index.evidence import FEATURES, REAL_TEXT
from index.textmodel import NEW_PATTERN_EVIDENCE, REPORTING, Document, TextModels, fit_text_models, real_target
from loophole.calibrate import STAGE_CUTS, Calibrated, recalibrated, run_calibration, staged
from loophole.cli import app
from loophole.evaluate import Label, Outcome

FIXTURES = Path(__file__).parent / "fixtures"
WRITTEN = [FIXTURES / "holdout15", FIXTURES / "holdout16"]
REAL, OTHER, VOCABULARY = FIXTURES / "genres_g", FIXTURES / "genres_h", FIXTURES / "genres_i"
NEW = [(FIXTURES / "new_pattern_sat", FIXTURES / "patterns" / "commercial-satellite-imagery.yaml"),
       (FIXTURES / "new_pattern_fab", FIXTURES / "patterns" / "fab-tool-servicing.yaml")]
NEW_IDS = {"commercial-satellite-imagery", "fab-tool-servicing"}


@dataclass
class Inputs:
    """What went into a calibration: the folders scored (in order), the groups of the decision's samples
    and of the text models' documents, and the new patterns' samples."""

    scored: list[Path] = field(default_factory=list)
    fitted: list[str] = field(default_factory=list)
    taught: list[str] = field(default_factory=list)
    new: list[Sample] = field(default_factory=list)


@dataclass
class Run:
    calibrated: Calibrated
    out: Path
    inputs: Inputs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("calibrate")
    record = Inputs()
    evaluate, fit, out_of_fold = (loophole.calibrate.evaluate, loophole.calibrate.fit,
                                  loophole.calibrate.out_of_fold_scores)

    def counting(folder: Path, settings: Settings, *patterns: Any) -> tuple[dict, list[Outcome]]:
        record.scored.append(folder)
        return evaluate(folder, settings, *patterns)

    def recording(samples: list[Sample], *args: Any, **kwargs: Any) -> DecisionModel:
        record.fitted.extend(sample.group for sample in samples)
        record.new.extend(kwargs.get("new_patterns", ()))
        return fit(samples, *args, **kwargs)

    def teaching(documents: list[Document], *args: Any) -> list[dict[str, float]]:
        record.taught.extend(document.group for document in documents)
        return out_of_fold(documents, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loophole.calibrate, "evaluate", counting)
        patch.setattr(loophole.calibrate, "fit", recording)
        patch.setattr(loophole.calibrate, "out_of_fold_scores", teaching)
        calibrated = run_calibration(Settings(home=tmp / "home"), WRITTEN, False, tmp / "decision.yaml", REAL,
                                     [REAL, OTHER], [VOCABULARY], NEW)
    yield Run(calibrated, tmp / "decision.yaml", record)


def test_calibrate_weighs_and_tunes_on_one_scoring_of_the_same_folder(run: Run) -> None:
    assert run.inputs.scored.count(REAL) == 1 and run.inputs.scored.count(OTHER) == 1 and sorted(run.inputs.scored[:2]) == WRITTEN
    decision = load_decision([run.out], run.calibrated.decision.model_id)
    assert decision is not None and (run.out.parent / "text_models.npz").is_file()
    assert f"weights: {REAL}" in decision.sources and f"cuts: {REAL}" in decision.sources
    assert 0.0 < decision.cut_for("reseller-intermediary") < 1.0
    assert set(decision.cross_validation) >= {"held_out_by_folder_precision", "held_out_by_folder_ece"}
    held_out = {k: v for k, v in decision.cross_validation.items() if k.startswith("held_out_by_real_folder_")}
    assert set(held_out) == {f"held_out_by_real_folder_{k}" for k in ("precision", "recall", "false_alarms_per_100")}
    assert 0.0 <= held_out["held_out_by_real_folder_recall"] <= 1.0


def test_text_only_folders_teach_the_text_models_not_the_weights(run: Run) -> None:
    """A ``--text-only`` folder's pages are in the text models' vocabulary and training, and are no sample
    of the decision: the weights (and the generic cut) stay what the other folders make them."""
    assert set(run.inputs.fitted) == {"holdout15", "holdout16"}
    assert f"text models only: {VOCABULARY}" in run.calibrated.decision.sources
    assert set(run.inputs.taught) == {"holdout15", "holdout16", "genres_i"}


def test_new_pattern_folders_fit_the_generic_weights_and_their_cut(run: Run) -> None:
    """``--new-pattern FOLDER=FILE``: the folder's pages are scored with that pattern file added, its own
    pattern's samples (news pages counted NEWS_WEIGHT times) fit the generic weights, and each new pattern
    held out in turn chooses the generic cut."""
    assert {sample.pattern_id for sample in run.inputs.new} == NEW_IDS and len(run.inputs.new) == 80
    news = {sample.doc for sample in run.inputs.new if sample.weight == loophole.calibrate.NEWS_WEIGHT}
    assert len(news) == 20 and all("news-" in doc for doc in news)
    decision = run.calibrated.decision
    unseen = {k.split(":", 1)[1] for k in decision.cross_validation if k.startswith("generic_unseen")}
    assert unseen == NEW_IDS and decision.generic_cut in CUTS
    assert f"new pattern: {NEW[0][0]} ({NEW[0][1]})" in decision.sources


def test_new_pattern_folders_fit_the_text_model_of_evidence_no_pattern_owns(run: Run) -> None:
    """Their pages also fit one more text target through the written folders' vocabulary; the samples carry its
    logits from a model fitted without their own pattern's folder, and only the generic weights weigh it."""
    saved = TextModels.load(run.calibrated.text_model_path)
    assert NEW_PATTERN_EVIDENCE in saved.weights and saved.vocabulary == run.calibrated.text_models.vocabulary
    evidence = [sample.features["evidence_text"] for sample in run.inputs.new]
    assert len(set(evidence)) > 40
    positives = [e for e, sample in zip(evidence, run.inputs.new, strict=True) if sample.positive]
    negatives = [e for e, sample in zip(evidence, run.inputs.new, strict=True) if not sample.positive]
    assert sum(positives) / len(positives) > sum(negatives) / len(negatives)
    column = FEATURES.index("evidence_text")
    decision = run.calibrated.decision
    assert all(weights.coefficients[column] == 0.0 for weights in decision.patterns.values())


def test_a_new_pattern_option_names_a_folder_and_a_pattern_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["calibrate", str(FIXTURES / "holdout15"), "--no-feedback",
                                      "--new-pattern", str(FIXTURES / "new_pattern_sat")],
                                env={"LOOPHOLE_HOME": str(tmp_path)})
    assert result.exit_code != 0 and "FOLDER=PATTERN_FILE" in result.output
    assert not (tmp_path / "decision.yaml").exists()


def test_calibrate_refuses_to_fit_text_models_on_real_pages(tmp_path: Path) -> None:
    """Real pages' text never enters a model: a folder whose labels carry a split is real pages, and
    ``--weigh A B`` (which leaves B among the folders to fit on) must stop, not fit on B."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "labels.jsonl").write_text('{"file": "pages/a.html", "url": "https://a.example/", "kind": "other", '
                                       '"lang": "en", "patterns": [], "split": "dev"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="real pages"):
        run_calibration(Settings(home=tmp_path / "home"), [FIXTURES / "holdout15", real], False, None)
    assert not (tmp_path / "home" / "decision.yaml").exists()


def test_text_only_folders_of_real_pages_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "labels.jsonl").write_text('{"file": "pages/a.html", "url": "https://a.example/", "kind": "other", '
                                       '"lang": "en", "patterns": [], "split": "test"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="real pages"):
        run_calibration(Settings(home=tmp_path / "home"), [FIXTURES / "holdout15"], False, None, vocabulary=[real])



def test_recalibration_needs_enough_evidence_pages_of_a_pattern() -> None:
    """A pattern is rescaled only with min_evidence evidence pages among the labelled ones; with none so, a clear
    error and nothing rescaled. A pattern rescaled before keeps its rescaling when another is fitted; a pattern
    decided by a stage is not rescaled."""
    decision = read_decision(Settings().decision_file).model_copy(update={"stages": {}})
    features = {name: 0.0 for name in FEATURES}
    texts = [(0, False), (0, False), (0, False), (1, False), (1, True), (2, False), (2, True), (2, True), (3, True),
             (3, True), (3, False), (3, True)]    # scores rank the pages, not perfectly
    outcomes = [Outcome(Label(f"{i}.html", f"http://127.0.0.1/{i}", "other", {"reseller-intermediary"} if truth else set()),
                        set(), "other", features={"reseller-intermediary": {**features, "text": float(text)}})
                for i, (text, truth) in enumerate(texts)]
    with pytest.raises(ConfigError, match="no pattern has 15 evidence pages.*6 evidence pages, 15 needed"):
        recalibrated(decision, outcomes, "toy")
    kept = decision.model_copy(update={"recalibration": {"gpu-cloud-rental": Recalibration(slope=0.5, offset=0.0)}})
    # The same pages are evidence of a second pattern too, whose scores rank them backwards: that one is left as it was.
    backwards = [Outcome(Label(o.label.file, o.label.url, "other", o.label.patterns | (
                         {"us-cloud-ai-services"} if o.label.patterns else set())), set(), "other",
                         features={**o.features, "us-cloud-ai-services": {
                             **features, "text": 3.0 - o.features["reseller-intermediary"]["text"]}})
                 for o in outcomes]
    result = recalibrated(kept, backwards, "toy", min_evidence=6)
    assert set(result.fitted) == {"reseller-intermediary"}
    assert "do not rank" in result.skipped["us-cloud-ai-services"]
    assert set(result.decision.recalibration) == {"gpu-cloud-rental", "reseller-intermediary"}
    stage = Stage(inputs=["log_odds"], mean=[0.0], scale=[1.0], coefficients=[1.0], intercept=0.0)
    with pytest.raises(ConfigError, match="reseller-intermediary: decided by its stage"):   # nothing else to rescale
        recalibrated(kept.model_copy(update={"stages": {"reseller-intermediary": stage}}), backwards, "toy", min_evidence=6)


def test_a_stage_learns_real_pages_words_through_the_shipped_vocabulary_and_holds_on_written_pages() -> None:
    """`staged` fits a text model on real and written pages through the vocabulary it is given (no real page's
    string enters the file), a stage over the log-odds and that model's logit, and a cut chosen on real pages held
    out by collection; with real pages of one collection only, that cut cannot be chosen: a clear error."""
    decision = read_decision(Settings().decision_file).model_copy(update={"stages": {}})
    pid = "reseller-intermediary"
    sellers = ["本站中转 GPT 充值 客服", "代充 Plus 支付宝 人民币", "中转 API 充值 发票", "独享账号 发货 售后"]
    others = ["自己注册 教程 虚拟卡", "官方 文档 API key 设置", "新闻 报道 出口管制", "开源 网关 部署 docker"]
    vocabulary = fit_text_models([Document(t, frozenset(), "v") for t in sellers + others] * 2, [REPORTING])
    features = {name: 0.0 for name in FEATURES}

    def outcome(group: str, number: int, truth: bool) -> tuple[str, Outcome]:
        text = (sellers if truth else others)[number % 4]
        label = Label(f"{group}-{number}.html", f"http://127.0.0.1/{group}/{number}", "other", {pid} if truth else set())
        return group, Outcome(label, set(), "other", features={pid: {**features, "text": 2.0 + number % 3}}, text=text)

    real = [outcome(f"collection {c}", n, n % 3 == 0) for c in (1, 2, 3) for n in range(12)]
    written = [outcome("written", n, n % 2 == 0) for n in range(16)]
    result = staged(decision, vocabulary, real, written, pid, "toy")
    stage = result.decision.stages[pid]
    assert stage.inputs == ["log_odds", REAL_TEXT] and stage.cut in STAGE_CUTS and stage.source == "toy"
    assert result.text_models.vocabulary == vocabulary.vocabulary
    assert set(result.text_models.weights) == {*vocabulary.weights, real_target(pid)}
    assert set(result.held_out) == {"stage", "shipped"} and 0 <= result.held_out["stage"]["f1"] <= 1
    # Run again over the stage it installed, it fits the same one: it is compared with the decision before any stage.
    assert staged(result.decision, result.text_models, real, written, pid, "toy").decision.stages[pid] == stage
    with pytest.raises(ConfigError, match="two collections"):
        staged(decision, vocabulary, [(group, o) for group, o in real if group == "collection 1"], written, pid, "toy")
