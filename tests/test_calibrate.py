"""``loophole calibrate`` end to end on small labelled folders: the page text models and the decision
are fitted and written, the patterns' own weights are refitted on a folder given with ``--weigh``, cuts
are chosen on one given with ``--tune-cuts``, a folder given for both is scored once, and the refit is
also scored held out by ``--weigh`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import loophole.calibrate
from ground.config import ConfigError, Settings
from index.decision import DecisionModel, Sample, load_decision
from index.textmodel import Document
from loophole.calibrate import run_calibration
from loophole.evaluate import Outcome

FIXTURES = Path(__file__).parent / "fixtures"


def test_calibrate_weighs_and_tunes_on_one_scoring_of_the_same_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    scored: list[Path] = []
    evaluate = loophole.calibrate.evaluate

    def counting(folder: Path, settings: Settings) -> tuple[dict, list[Outcome]]:
        scored.append(folder)
        return evaluate(folder, settings)

    monkeypatch.setattr(loophole.calibrate, "evaluate", counting)
    written, real, other = [FIXTURES / "holdout15", FIXTURES / "holdout16"], FIXTURES / "genres_g", FIXTURES / "genres_h"
    out = tmp_path / "decision.yaml"
    calibrated = run_calibration(Settings(home=tmp_path / "home"), written, False, out, real, [real, other])
    assert scored.count(real) == 1 and scored.count(other) == 1 and sorted(scored[:2]) == written
    decision = load_decision([out], calibrated.decision.model_id)
    assert decision is not None and (tmp_path / "text_models.npz").is_file()
    assert f"weights: {real}" in decision.sources and f"cuts: {real}" in decision.sources
    assert 0.0 < decision.cut_for("reseller-intermediary") < 1.0
    assert set(decision.cross_validation) >= {"held_out_by_folder_precision", "held_out_by_folder_ece"}
    held_out = {k: v for k, v in decision.cross_validation.items() if k.startswith("held_out_by_real_folder_")}
    assert set(held_out) == {f"held_out_by_real_folder_{k}" for k in ("precision", "recall", "false_alarms_per_100")}
    assert 0.0 <= held_out["held_out_by_real_folder_recall"] <= 1.0


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


def test_text_only_folders_teach_the_text_models_not_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``--text-only`` folder's pages are in the text models' vocabulary and training, and are no sample
    of the decision: the generic weights (and their cut) stay what the other folders make them."""
    fitted: list[str] = []
    taught: list[str] = []
    fit, out_of_fold = loophole.calibrate.fit, loophole.calibrate.out_of_fold_scores

    def recording(samples: list[Sample], *args: Any, **kwargs: Any) -> DecisionModel:
        fitted.extend(sample.group for sample in samples)
        return fit(samples, *args, **kwargs)

    def teaching(documents: list[Document], *args: Any) -> list[dict[str, float]]:
        taught.extend(document.group for document in documents)
        return out_of_fold(documents, *args)

    monkeypatch.setattr(loophole.calibrate, "fit", recording)
    monkeypatch.setattr(loophole.calibrate, "out_of_fold_scores", teaching)
    written, vocabulary = [FIXTURES / "holdout15", FIXTURES / "holdout16"], FIXTURES / "genres_g"
    out = tmp_path / "decision.yaml"
    calibrated = run_calibration(Settings(home=tmp_path / "home"), written, False, out, vocabulary=[vocabulary])
    assert set(fitted) == {"holdout15", "holdout16"}
    assert f"text models only: {vocabulary}" in calibrated.decision.sources
    assert set(taught) == {"holdout15", "holdout16", "genres_g"}


def test_text_only_folders_of_real_pages_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "labels.jsonl").write_text('{"file": "pages/a.html", "url": "https://a.example/", "kind": "other", '
                                       '"lang": "en", "patterns": [], "split": "test"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="real pages"):
        run_calibration(Settings(home=tmp_path / "home"), [FIXTURES / "holdout15"], False, None, vocabulary=[real])
