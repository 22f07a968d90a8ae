"""Per-pattern thresholds fitted on labelled pages and analysts' verdicts, with cross-validation.

Why per pattern: similarity scales differ between patterns (a reseller's wording sits further
from any example than a GPU line item does), so one global cut-off trades one pattern's recall
for another's precision. Why stored with the library version and model id: a threshold is only
meaningful for the examples and the vectors it was fitted on; after either changes the file is
ignored (with a warning) until someone recalibrates.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from loophole.config import ConfigError, read_yaml_mapping

log = logging.getLogger(__name__)

PRIOR_WEIGHT = 2.0   # pseudo-positives pulling a threshold fitted on few pages towards the prior


@dataclass(frozen=True)
class Sample:
    """One document scored against one pattern, with the truth for it."""

    doc: str
    pattern_id: str
    score: float
    eligible: bool      # False when a gate (kind, required entities) suppressed the pattern
    positive: bool


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library_version: str
    model_id: str
    thresholds: dict[str, float]
    support: dict[str, int] = {}
    cross_validation: dict[str, float] = {}
    created: str = ""
    sources: list[str] = []


def load_thresholds(paths: Iterable[Path], library_version: str, model_id: str) -> dict[str, float]:
    """Thresholds from the calibration files that match this library and model; later files win."""
    thresholds: dict[str, float] = {}
    for path in paths:
        if not Path(path).exists():
            continue
        try:
            calibration = Calibration.model_validate(read_yaml_mapping(Path(path)))
        except ValidationError as exc:
            raise ConfigError(f"{path}: invalid calibration file: {exc.errors()[0]['msg']} "
                              f"at {'.'.join(str(p) for p in exc.errors()[0]['loc'])}") from exc
        if calibration.library_version != library_version or calibration.model_id != model_id:
            log.warning("%s: calibrated for library %s / %s, not %s / %s; ignored until `loophole calibrate`",
                        path, calibration.library_version, calibration.model_id, library_version, model_id)
            continue
        thresholds.update(calibration.thresholds)
    return thresholds


def save_calibration(path: Path, calibration: Calibration) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `loophole calibrate`; thresholds apply only to the library version and model below.\n"
    body = yaml.safe_dump(calibration.model_dump(), allow_unicode=True, sort_keys=False)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def best_threshold(samples: Sequence[Sample], prior: float) -> float:
    """The cut that maximises F1 on these samples; ties go to the widest gap between scores.

    Suppressed samples never fire, so they only count as misses. With few positives the cut
    is pulled towards the prior, because a threshold fitted on two pages is mostly noise.
    """
    eligible = sorted((s.score, s.positive) for s in samples if s.eligible)
    missed = sum(1 for s in samples if s.positive and not s.eligible)
    positives = sum(1 for _, positive in eligible if positive)
    if not positives:
        return prior
    scores = [score for score, _ in eligible]
    cuts = [scores[0] - 0.01] + [(a + b) / 2 for a, b in zip(scores, scores[1:], strict=False) if b > a]
    best: tuple[float, float, float] | None = None
    for cut in cuts:
        tp = sum(1 for score, positive in eligible if positive and score >= cut)
        fp = sum(1 for score, positive in eligible if not positive and score >= cut)
        fn = positives - tp + missed
        gap = min(abs(score - cut) for score in scores)
        candidate = (_f1(tp, fp, fn), gap, cut)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    assert best is not None
    return (positives * best[2] + PRIOR_WEIGHT * prior) / (positives + PRIOR_WEIGHT)


def fit_thresholds(samples: Sequence[Sample], priors: dict[str, float]) -> dict[str, float]:
    return {pid: round(best_threshold([s for s in samples if s.pattern_id == pid], prior), 4)
            for pid, prior in priors.items()}


def decisions(samples: Sequence[Sample], thresholds: dict[str, float]) -> dict[str, tuple[set[str], set[str]]]:
    """Per document: (patterns predicted, patterns true)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for s in samples:
        predicted, truth = out.setdefault(s.doc, (set(), set()))
        if s.eligible and s.pattern_id in thresholds and s.score >= thresholds[s.pattern_id]:
            predicted.add(s.pattern_id)
        if s.positive:
            truth.add(s.pattern_id)
    return out


def summarise(outcomes: dict[str, tuple[set[str], set[str]]], pattern_ids: Iterable[str]) -> dict[str, float]:
    """Document-level precision and recall of 'any alert', and macro F1 over patterns with support."""
    tp = sum(1 for p, t in outcomes.values() if p and t)
    fp = sum(1 for p, t in outcomes.values() if p and not t)
    fn = sum(1 for p, t in outcomes.values() if t and not p)
    f1s = []
    for pid in pattern_ids:
        ptp = sum(1 for p, t in outcomes.values() if pid in p and pid in t)
        pfp = sum(1 for p, t in outcomes.values() if pid in p and pid not in t)
        pfn = sum(1 for p, t in outcomes.values() if pid in t and pid not in p)
        if ptp + pfn:
            f1s.append(_f1(ptp, pfp, pfn))
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0,
    }


def cross_validate(samples: Sequence[Sample], priors: dict[str, float], folds: int = 5,
                   seed: int = 0) -> dict[str, float]:
    """K-fold over documents: fit on the rest, decide the held-out fold; the honest estimate."""
    docs = sorted({s.doc for s in samples})
    random.Random(seed).shuffle(docs)
    fold_of = {doc: i % folds for i, doc in enumerate(docs)}
    held_out: dict[str, tuple[set[str], set[str]]] = {}
    for fold in range(folds):
        train = [s for s in samples if fold_of[s.doc] != fold]
        test = [s for s in samples if fold_of[s.doc] == fold]
        held_out.update(decisions(test, fit_thresholds(train, priors)))
    return {"folds": float(folds), **summarise(held_out, priors)}


def calibrate(samples: Sequence[Sample], priors: dict[str, float], library_version: str, model_id: str,
              sources: list[str]) -> Calibration:
    positives = {pid: sum(1 for s in samples if s.pattern_id == pid and s.positive) for pid in priors}
    return Calibration(library_version=library_version, model_id=model_id,
                       thresholds=fit_thresholds(samples, priors), support=positives,
                       cross_validation=cross_validate(samples, priors),
                       created=datetime.now(UTC).isoformat(timespec="seconds"), sources=sources)
