"""``loophole eval``: score a labelled folder in a throw-away data directory.

The folder holds pages and a ``labels.jsonl`` (spec/patterns.md). Metrics are document-level
for "any alert" and per pattern; the misclassified documents are listed with the sentence
that decided, so a person can see why.
"""

from __future__ import annotations

import json
import tempfile
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select

from ground.config import ConfigError, Settings
from index.crossval import reliability
from index.decision import Sample, read_decision, save_decision
from index.store import Detection, Document
from index.textmodel import opening
from loophole.pipeline import Monitor, RawPage

T = TypeVar("T")


@dataclass
class Label:
    file: str
    url: str
    kind: str
    patterns: set[str]
    split: str = ""        # real pages' labels carry one (tests/fixtures/real_web); written ones do not


@dataclass
class Outcome:
    label: Label
    predicted: set[str]
    kind: str
    evidence: dict[str, str] = field(default_factory=dict)
    features: dict[str, dict[str, float]] = field(default_factory=dict)   # pattern -> evidence features
    text: str = ""                                                         # the page's opening (index.textmodel)
    scores: dict[str, float] = field(default_factory=dict)                 # pattern -> the alert probability shown

    def samples(self, group: str = "") -> list[Sample]:
        """Every pattern's features with the truth, for fitting and checking a decision model."""
        return [Sample(f"{group}:{self.label.file}", pid, features, pid in self.label.patterns, group)
                for pid, features in self.features.items()]


def read_labels(folder: Path) -> list[Label]:
    path = folder / "labels.jsonl"
    if not path.exists():
        raise ConfigError(f"{path}: missing (a labelled folder needs labels.jsonl)")
    return read_json_lines(path, "label", lambda row: Label(row["file"], row.get("url") or row["file"],
                                                            row.get("kind", ""), set(row.get("patterns") or []),
                                                            row.get("split") or ""))


def read_json_lines(path: Path, what: str, make: Callable[[dict], T]) -> list[T]:
    """One ``make(row)`` per non-empty line; a line that is not JSON or lacks a field is named with its number."""
    made = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            made.append(make(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{number}: bad {what} line: {exc}") from exc
    return made


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def metrics(outcomes: list[Outcome], pattern_ids: Iterable[str]) -> dict:
    tp = sum(1 for o in outcomes if o.predicted and o.label.patterns)
    fp = sum(1 for o in outcomes if o.predicted and not o.label.patterns)
    fn = sum(1 for o in outcomes if not o.predicted and o.label.patterns)
    per_pattern = {}
    for pid in pattern_ids:
        ptp = sum(1 for o in outcomes if pid in o.predicted and pid in o.label.patterns)
        pfp = sum(1 for o in outcomes if pid in o.predicted and pid not in o.label.patterns)
        pfn = sum(1 for o in outcomes if pid not in o.predicted and pid in o.label.patterns)
        per_pattern[pid] = {**_prf(ptp, pfp, pfn), "support": sum(1 for o in outcomes if pid in o.label.patterns)}
    supported = [v["f1"] for v in per_pattern.values() if v["support"]]
    # By the page's labelled kind (its guessed kind where the label gives none): "alerts on news" means alerts on
    # pages that are news, not on pages the kind guess took for news (a seller's tutorial often is).
    by_kind = Counter(o.label.kind or o.kind for o in outcomes if o.predicted)
    return {
        "documents": len(outcomes),
        "alert": {**_prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn},
        "patterns": per_pattern,
        "macro_f1": round(sum(supported) / len(supported), 4) if supported else 0.0,
        "alerts_by_kind": dict(sorted(by_kind.items())),
    }


def news_alerts(outcomes: list[Outcome]) -> list[str]:
    """The pages labelled news or commentary that alerted: never evidence, whatever they report."""
    return [o.label.file for o in outcomes if o.predicted and o.label.kind == "news-commentary"]


def false_alarms(outcomes: list[Outcome]) -> tuple[float, list[str]]:
    """False alarms per 100 pages labelled with no pattern, and the labelled news pages that alerted: the two
    figures a reader of the daily email feels most (kept out of the JSON, whose shape is a contract)."""
    negatives = sum(1 for o in outcomes if not o.label.patterns)
    alarms = sum(1 for o in outcomes if o.predicted and not o.label.patterns)
    return (round(100 * alarms / negatives, 1) if negatives else 0.0), news_alerts(outcomes)


# Score bands for the reliability table: finer where alerts are decided, as a reader would ask "what is a 0.8?".
SCORE_BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    scores: int            # page-pattern scores in the band
    mean_score: float
    evidence: float        # the share of them that is labelled evidence of that pattern


@dataclass(frozen=True)
class Confidence:
    """Whether the scores shown in alerts mean what they say on this folder: the Brier score, the expected
    calibration error and, per band of scores, how often a page scored so was evidence."""

    brier: float
    ece: float
    bands: list[Band]


def confidence(outcomes: list[Outcome]) -> Confidence:
    """Over every page and every pattern it was scored for (suppressed scores left out, as they never alert).
    Why: the digest shows each alert's probability; on labelled pages a reader can check what 0.8 means."""
    pairs = [(score, pid in o.label.patterns) for o in outcomes for pid, score in o.scores.items()]
    figures = reliability([p for p, _ in pairs], [t for _, t in pairs]) if pairs else {"brier": 0.0, "ece": 0.0}
    banded: dict[int, list[tuple[float, bool]]] = {}
    for p, t in pairs:   # each band holds its low end; the last also holds 1.0
        banded.setdefault(min(bisect_right(SCORE_BANDS, p), len(SCORE_BANDS) - 1) - 1, []).append((p, t))
    bands = [Band(SCORE_BANDS[i], SCORE_BANDS[i + 1], len(inside), round(sum(p for p, _ in inside) / len(inside), 3),
                  round(sum(t for _, t in inside) / len(inside), 3)) for i, inside in sorted(banded.items())]
    return Confidence(figures["brier"], figures["ece"], bands)


def _why(detection: Detection) -> str:
    """Score against threshold, any gate that suppressed the pattern, and the deciding sentence."""
    reasons = detection.reasons or {}
    gate = f" suppressed: {reasons['suppressed']};" if reasons.get("suppressed") else ""
    types = reasons.get("sentence_entity_types")
    named = f" unit names: {', '.join(types)};" if types else ""
    shares = sorted((reasons.get("contributions") or {}).items(), key=lambda item: -abs(item[1]))[:4]
    why = " ".join(f"{name}{share:+.1f}" for name, share in shares)
    return (f"p={detection.score:.3f} (cut {reasons.get('threshold', '?')}, {reasons.get('weights', '?')} weights: "
            f"{why});{gate}{named} {detection.sentence[:200]}")


def _outcomes(monitor: Monitor, labels: list[Label]) -> list[Outcome]:
    outcomes = []
    with monitor.store.session() as session:
        for label in labels:
            doc = session.scalar(select(Document).where(Document.url == label.url))
            if doc is None:
                outcomes.append(Outcome(label, set(), "rejected"))
                continue
            detections = list(session.scalars(select(Detection).where(Detection.doc_id == doc.id)))
            flagged = {d.pattern_id for d in detections if d.flagged}
            evidence = {d.pattern_id: _why(d) for d in detections if d.flagged or d.pattern_id in label.patterns}
            scored = [d for d in detections if not (d.reasons or {}).get("suppressed")]
            features = {d.pattern_id: (d.reasons or {}).get("features", {}) for d in scored}
            outcomes.append(Outcome(label, flagged, doc.kind, evidence, features, opening(doc.title, doc.text),
                                    {d.pattern_id: d.score for d in scored}))
    return outcomes


def evaluate(folder: Path, base: Settings, extra_patterns: list[Path] | None = None,
             progress: bool = False, generic: bool = False) -> tuple[dict, list[Outcome]]:
    """Run the whole chain on the folder in a temporary home; the user's data is not touched. ``generic``
    decides every pattern by the generic weights, as if each were given only as a YAML file: how a pattern
    someone adds would fare on pages like these, written by whoever wrote them."""
    return evaluate_pages(read_labels(folder), lambda label: _listed_file(folder, label), base, extra_patterns,
                          progress, generic)


def evaluate_pages(labels: list[Label], body_of: Callable[[Label], bytes], base: Settings,
                   extra_patterns: list[Path] | None = None, progress: bool = False,
                   generic: bool = False) -> tuple[dict, list[Outcome]]:
    """As ``evaluate``, for pages whose bytes come from elsewhere than a folder: real pages read in place
    where they may not be copied (loophole.repo_pages reads them from git mirrors)."""
    with tempfile.TemporaryDirectory(prefix="loophole-eval-") as tmp:
        decision_file = fitted_file(base, "decision.yaml", base.decision_file)
        if generic:
            decision_file = _generic_only(decision_file, Path(tmp) / "generic-decision.yaml")
        text_models = fitted_file(base, "text_models.npz", base.text_model_file)
        settings = base.model_copy(update={"home": Path(tmp), "database_url": None, "decision_file": decision_file,
                                           "text_model_file": text_models})
        monitor = Monitor(settings, extra_patterns)
        monitor.check_patterns()
        iterator: Iterable[Label] = labels
        if progress:
            from tqdm import tqdm
            iterator = tqdm(labels, desc="eval", unit="doc")
        for label in iterator:
            monitor.ingest(RawPage(url=label.url, body=body_of(label), source="eval"))
        outcomes = _outcomes(monitor, labels)
        pattern_ids = [p.id for p in monitor.library.patterns]
        monitor.store.close()
    return metrics(outcomes, pattern_ids), outcomes


def _listed_file(folder: Path, label: Label) -> bytes:
    path = folder / label.file
    if not path.is_file():
        raise ConfigError(f"{folder / 'labels.jsonl'}: listed file {label.file!r} does not exist")
    return path.read_bytes()


def _generic_only(decision_file: Path, out: Path) -> Path:
    """A copy of the decision file without any pattern's own weights or cuts."""
    save_decision(out, read_decision(decision_file).generic_only())
    return out


def fitted_file(settings: Settings, name: str, shipped: Path) -> Path:
    """The data directory's own fitted file if there is one, else the shipped one."""
    own = settings.home / name
    return own if own.exists() else shipped


def misclassified(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.predicted != o.label.patterns]

