"""Honest figures for a decision model: fitted without the pages it is scored on.

Two questions. Held out by writer (a labelled folder is one writer's pages): how well do the
weights do on pages written by someone they never saw? Held out by pattern: how well do the
generic weights do for a pattern they never saw, as a pattern added as a YAML file would be?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from index.decision import DecisionModel, Sample, fit, new_pattern_weights, standardisation, weighed_on

Outcomes = dict[str, tuple[set[str], set[str]]]


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def decide(model: DecisionModel, samples: Sequence[Sample]) -> tuple[Outcomes, list[float]]:
    """Per document: (patterns predicted, patterns true); and every sample's probability."""
    outcomes: Outcomes = {}
    probabilities = []
    for s in samples:
        predicted, truth = outcomes.setdefault(s.doc, (set(), set()))
        probability = model.probability(s.pattern_id, s.features)
        probabilities.append(probability)
        if probability >= model.cut_for(s.pattern_id):
            predicted.add(s.pattern_id)
        if s.positive:
            truth.add(s.pattern_id)
    return outcomes, probabilities


def summarise(outcomes: Outcomes, pattern_ids: Iterable[str]) -> dict[str, float]:
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
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "macro_f1": round(sum(f1s) / len(f1s), 4) if f1s else 0.0}


def reliability(probabilities: Sequence[float], truths: Sequence[bool], bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error: whether a 0.8 is right about four times in five."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(truths, dtype=np.float64)
    edges = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[edges == b].mean() - y[edges == b].mean()) * (edges == b).sum() for b in range(bins)
              if (edges == b).any()) / max(len(p), 1)
    return {"brier": round(float(np.mean((p - y) ** 2)), 4), "ece": round(float(ece), 4)}


def leave_group_out(samples: Sequence[Sample], model_id: str) -> dict[str, float]:
    """Fit on every writer but one, decide that one's pages; pooled over writers."""
    outcomes: Outcomes = {}
    probabilities: list[float] = []
    truths: list[bool] = []
    for group in sorted({s.group for s in samples}):
        train = [s for s in samples if s.group != group]
        test = [s for s in samples if s.group == group]
        if not any(s.positive for s in train):
            continue
        decided, scored = decide(fit(train, model_id), test)
        outcomes.update(decided)
        probabilities += scored
        truths += [s.positive for s in test]
    pattern_ids = sorted({s.pattern_id for s in samples})
    return {**summarise(outcomes, pattern_ids), **reliability(probabilities, truths)}


Scored = list[tuple[float, bool]]     # (probability, truth) for one pattern's samples
CUTS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))   # 0.30 ... 0.95


def leave_pattern_out(samples: Sequence[Sample], model_id: str) -> dict[str, Scored]:
    """For each pattern, fit without its labels and score it with the generic weights alone, as a
    pattern added as a YAML file would be scored."""
    held: dict[str, Scored] = {}
    for pid in sorted({s.pattern_id for s in samples}):
        train = [s for s in samples if s.pattern_id != pid]
        test = [s for s in samples if s.pattern_id == pid]
        model = fit(train, model_id).model_copy(update={"patterns": {}})
        held[pid] = [(model.probability(pid, s.features), s.positive) for s in test]
    return held


def leave_new_pattern_out(samples: Sequence[Sample], new_patterns: Sequence[Sample],
                          model_id: str) -> dict[str, Scored]:
    """For each pattern given as a YAML file, the generic weights fitted on the other such patterns'
    pages (index.decision.fit's ``new_patterns``) score its own: what the next pattern added as a YAML
    file should expect."""
    mean, scale = standardisation(samples, new_patterns)
    # The scale (with the new patterns' own for the features only they weigh); only the generic weights change.
    base = fit(samples, model_id).model_copy(update={"patterns": {}, "mean": list(mean), "scale": list(scale)})
    held: dict[str, Scored] = {}
    for pid in sorted({s.pattern_id for s in new_patterns}):
        others = [s for s in new_patterns if s.pattern_id != pid]
        model = base.model_copy(update={"generic": new_pattern_weights(others, mean, scale)}) if others else base
        held[pid] = [(model.probability(pid, s.features), s.positive) for s in new_patterns if s.pattern_id == pid]
    return held


def f1_at(scored: Scored, cut: float) -> float:
    tp = sum(1 for p, t in scored if p >= cut and t)
    fp = sum(1 for p, t in scored if p >= cut and not t)
    fn = sum(1 for p, t in scored if p < cut and t)
    return _f1(tp, fp, fn)


def best_generic_cut(held: dict[str, Scored]) -> float:
    """The cut at which unseen patterns fare best on average: a pattern with no pages of its own has
    only the generic weights, and they were fitted on other patterns' pages, so their 0.5 need not be
    the right place to cut (a new pattern's near misses tend to score higher than seen patterns')."""
    return max(CUTS, key=lambda cut: (sum(f1_at(scored, cut) for scored in held.values()), -abs(cut - 0.5)))


MIN_TUNING_POSITIVES = 5


def tuned_cuts(scored: dict[str, Scored], default: Callable[[str], float]) -> dict[str, float]:
    """Per pattern, the cut with the best F1 on pages scored by an already fitted model (ties go to the
    pattern's default cut): for users whose own labelled pages read differently from the fitted ones.
    Patterns with fewer than MIN_TUNING_POSITIVES evidence pages there keep their default."""
    cuts = {}
    for pid, pairs in scored.items():
        if sum(1 for _, truth in pairs if truth) < MIN_TUNING_POSITIVES:
            continue
        best = max(CUTS + (default(pid),), key=lambda cut: (round(f1_at(pairs, cut), 4), -abs(cut - default(pid))))
        if best != default(pid):
            cuts[pid] = best
    return cuts


def leave_real_folder_out(decision: DecisionModel, real: dict[str, list[Sample]], written: Sequence[Sample],
                          real_weight: int) -> dict[str, float]:
    """Refit the patterns' own weights on every real folder but one (index.decision.weighed_on), decide
    that one's pages at the decision's cuts; pooled over folders. Why: once real pages refit the weights,
    their figures on those same pages are in-sample; a folder per collection (gathered later, from other
    searches and hosts) asks what the next collection will see."""
    if len(real) < 2:
        return {}
    outcomes: Outcomes = {}
    for name, held in real.items():
        others = [sample for other, samples in real.items() if other != name for sample in samples]
        outcomes.update(decide(weighed_on(decision, others, written, real_weight), held)[0])
    negatives = sum(1 for _, truth in outcomes.values() if not truth)
    false_alarms = sum(1 for predicted, truth in outcomes.values() if predicted and not truth)
    figures = summarise(outcomes, sorted({s.pattern_id for samples in real.values() for s in samples}))
    return {"precision": figures["precision"], "recall": figures["recall"],
            "false_alarms_per_100": round(100 * false_alarms / max(negatives, 1), 2)}
