"""``loophole calibrate``: labelled folders and recorded verdicts in, a decision model out.

Labelled pages are scored in a throw-away home (as ``loophole eval`` does); verdicts come from
the user's own store, with the features they had when judged. The page text models
(index.textmodel) are fitted on the folders' pages first, and the decision (index.decision) on
their out-of-fold logits plus the other features; index.crossval checks the result held out by
folder (one writer's pages at a time) and, for the generic weights, by pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select

from ground.config import ConfigError, Settings
from index.crossval import (
    best_generic_cut,
    f1_at,
    leave_group_out,
    leave_new_pattern_out,
    leave_pattern_out,
    leave_real_folder_out,
    reliability,
    tuned_cuts,
)
from index.decision import (
    MIN_SUPPORT,
    DecisionModel,
    Recalibration,
    Sample,
    StagePage,
    fit,
    fit_recalibration,
    fit_stage,
    save_decision,
    weighed_on,
)
from index.embed import get_embedder
from index.evidence import REAL_TEXT, logit_feature
from index.feedback import verdict_labels
from index.patterns import PatternLibrary, load_library
from index.store import Detection, Store
from index.textmodel import (
    NEW_PATTERN_EVIDENCE,
    REPORTING,
    Document,
    TextModels,
    fit_text_models,
    out_of_fold_scores,
    real_target,
)
from loophole.evaluate import Outcome, evaluate, read_labels


@dataclass
class Calibrated:
    decision: DecisionModel
    text_models: TextModels
    decision_path: Path
    text_model_path: Path


def labelled_outcomes(folders: list[Path], settings: Settings) -> list[tuple[str, Outcome]]:
    return [(folder.name, outcome) for folder in folders for outcome in evaluate(folder, settings)[1]]


def feedback_samples(settings: Settings) -> list[Sample]:
    """Each judged (document, pattern) with the features it had: a confirmed or dismissed sample."""
    if settings.database_url is None and not (settings.home / "loophole.db").exists():
        return []
    store = Store(settings.db_url)
    try:
        labels = verdict_labels(store)
        samples = []
        with store.session() as session:
            for (doc_id, pid), confirmed in labels.items():
                detection = session.scalar(select(Detection).where(Detection.doc_id == doc_id,
                                                                   Detection.pattern_id == pid))
                features = ((detection.reasons or {}).get("features") if detection is not None else None) or {}
                if features:
                    samples.append(Sample(f"feedback:{doc_id}", pid, features, confirmed, "feedback"))
        return samples
    finally:
        store.close()


def _author_sentences(library: PatternLibrary, targets: list[str]) -> dict[str, list[tuple[str, bool]]]:
    """Each fitted pattern's examples and counter-examples, as short labelled texts for its text model."""
    return {p.id: [(e, True) for e in p.examples] + [(c, False) for c in p.counter_examples]
            for p in library.patterns if p.id in targets}


def _text_targets(outcomes: list[tuple[str, Outcome]]) -> list[str]:
    counts: dict[str, int] = {}
    for _, outcome in outcomes:
        for pid in outcome.label.patterns:
            counts[pid] = counts.get(pid, 0) + 1
    return sorted(pid for pid, count in counts.items() if count >= MIN_SUPPORT)


def stacked_samples(outcomes: list[tuple[str, Outcome]], library: PatternLibrary,
                    vocabulary: list[tuple[str, Outcome]] | None = None) -> tuple[list[Sample], TextModels]:
    """The labelled samples with their ``text`` feature replaced by out-of-fold logits, and the text
    models fitted on every page. ``vocabulary`` pages join the text models only: they are no samples
    of the decision (see run_calibration)."""
    taught = [*outcomes, *(vocabulary or [])]
    documents = [Document(outcome.text, frozenset(outcome.label.patterns), group, outcome.label.kind)
                 for group, outcome in taught]
    targets = [*_text_targets(taught), REPORTING]
    extra = _author_sentences(library, targets)
    held_out = out_of_fold_scores(documents, targets, extra)
    samples = [replace(sample, features={**sample.features, "text": held_out[i].get(sample.pattern_id, 0.0),
                                         "reporting": held_out[i].get(REPORTING, 0.0)})
               for i, (group, outcome) in enumerate(outcomes) for sample in outcome.samples(group)]
    return samples, fit_text_models(documents, targets, extra)


def scored_by_pattern(decision: DecisionModel, outcomes: list[Outcome]) -> dict[str, list[tuple[float, bool]]]:
    """Each pattern's probability on every page scored for it, with whether the page is labelled evidence of it."""
    scored: dict[str, list[tuple[float, bool]]] = {}
    for outcome in outcomes:
        for pid, features in outcome.features.items():
            scored.setdefault(pid, []).append((decision.probability(pid, features), pid in outcome.label.patterns))
    return scored


def tune_cuts(decision: DecisionModel, outcomes: list[Outcome], folder: Path) -> DecisionModel:
    """Per-pattern cuts chosen on a labelled folder's pages, scored with text models that never saw
    their text: real pages read weaker than written ones, so their best cut can sit lower."""
    cuts = tuned_cuts(scored_by_pattern(decision, outcomes), decision.cut_for)
    return decision.model_copy(update={"pattern_cuts": cuts, "sources": [*decision.sources, f"cuts: {folder}"]})


@dataclass(frozen=True)
class Rescaled:
    """A recalibration's result: the decision to write, the patterns rescaled, and why the others were not."""

    decision: DecisionModel
    fitted: dict[str, Recalibration]
    skipped: dict[str, str]


def recalibrated(decision: DecisionModel, outcomes: list[Outcome], source: str,
                 min_evidence: int = MIN_SUPPORT) -> Rescaled:
    """The decision with each pattern's shown probability rescaled to what it was worth on these pages (see
    index.decision.Recalibration), for patterns with ``min_evidence`` evidence pages among them whose scores
    rank them; the others keep any rescaling they had. Why: on real pages never fitted, the probabilities ran
    high in the middle (an alert at 0.6 was evidence one time in three), and a reader should be able to take a
    score at its word."""
    fitted: dict[str, Recalibration] = {}
    skipped: dict[str, str] = {}
    for pid, pairs in sorted(scored_by_pattern(decision.without_recalibration(), outcomes).items()):
        if pid in decision.stages:
            skipped[pid] = "decided by its stage, which was fitted on real pages"
            continue
        evidence = sum(truth for _, truth in pairs)
        if evidence < min_evidence:
            skipped[pid] = f"{evidence} evidence pages, {min_evidence} needed"
            continue
        try:
            fitted[pid] = fit_recalibration(pairs, source)
        except ConfigError as exc:
            skipped[pid] = str(exc)
    if not fitted:
        raise ConfigError(f"{source}: no pattern has {min_evidence} evidence pages here whose scores can be "
                          f"rescaled; nothing to recalibrate ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return Rescaled(decision.model_copy(update={"recalibration": {**decision.recalibration, **fitted}}), fitted,
                    skipped)


def score_reliability(decision: DecisionModel, outcomes: list[Outcome], pattern_id: str) -> dict[str, float]:
    """Brier score and expected calibration error of one pattern's probabilities on these pages."""
    pairs = scored_by_pattern(decision, outcomes).get(pattern_id, [])
    return reliability([p for p, _ in pairs], [t for _, t in pairs])


STAGE_CUTS = tuple(round(0.20 + 0.05 * step, 2) for step in range(15))   # 0.20 ... 0.90


@dataclass(frozen=True)
class Staged:
    """A stage's result: the decision and text models to write, and the real pages' figures held out one group
    (collection) at a time, the stage's against the decision's it was fitted over."""

    decision: DecisionModel
    text_models: TextModels
    held_out: dict[str, dict[str, float]]


def staged(decision: DecisionModel, text_models: TextModels, real: list[tuple[str, Outcome]],
           written: list[tuple[str, Outcome]], pattern_id: str, source: str) -> Staged:
    """The decision with a stage for one pattern (index.decision.Stage) over its log-odds and the logit of a text
    model fitted on the real and written pages through the shipped vocabulary. Its cut is chosen on pages the stage
    never saw: the best F1 on the real pages held out one group at a time, among the cuts at which the written pages,
    held out by folder, keep the F1 the decision had on them. Why the written pages: alone, real pages teach
    the stage that a seller's voice is enough, and the written near twins (sellers of what the patterns exclude)
    are what says it is not (rounds 14 and 15, docs/real-page-rounds-*.md)."""
    real, written = _scored_for(real, pattern_id), _scored_for(written, pattern_id)
    if len({group for group, _ in real}) < 2:
        raise ConfigError("a stage's cut is chosen on real pages held out one group at a time: give real pages of "
                          "two collections or more")
    target = real_target(pattern_id)
    documents = [Document(o.text, frozenset(o.label.patterns), group, o.label.kind) for group, o in [*real, *written]]
    held_text = text_models.out_of_fold(target, documents)
    share = len(real) / max(1, len(written))
    weights = decision.without_recalibration()
    pages = [StagePage(weights.log_odds(pattern_id, o.features[pattern_id]), {REAL_TEXT: logit_feature(text)},
                       pattern_id in o.label.patterns, 1.0 if i < len(real) else share, group)
             for i, ((group, o), text) in enumerate(zip([*real, *written], held_text, strict=True))]
    # Compared with the decision as it was before any stage of this pattern, so that a rerun over an installed stage
    # fits the same one.
    before = decision.model_copy(update={"stages": {k: v for k, v in decision.stages.items() if k != pattern_id}})
    shipped = [(before.probability(pattern_id, o.features[pattern_id]), page.truth)
               for (_, o), page in zip([*real, *written], pages, strict=True)]
    real_pages, written_pages = pages[:len(real)], pages[len(real):]
    real_scored, written_scored = _held_out(pages, real_pages), _held_out(pages, written_pages)
    floor = f1_at(shipped[len(real):], before.cut_for(pattern_id))
    allowed = [cut for cut in STAGE_CUTS if f1_at(written_scored, cut) >= floor]
    if not allowed:
        raise ConfigError(f"no cut keeps the written pages' F1 for {pattern_id} ({floor:.3f}): no stage")
    cut = max(allowed, key=lambda c: f1_at(real_scored, c))
    stage = fit_stage(pages, [REAL_TEXT], source).model_copy(update={"cut": cut})
    figures = {"stage": _figures(real_scored, cut),
               "shipped": _figures(shipped[:len(real)], before.cut_for(pattern_id))}
    return Staged(decision.model_copy(update={"stages": {**decision.stages, pattern_id: stage}}),
                  text_models.with_target(target, documents), figures)


def _scored_for(outcomes: list[tuple[str, Outcome]], pattern_id: str) -> list[tuple[str, Outcome]]:
    return [(group, o) for group, o in outcomes if pattern_id in o.features]


def _held_out(pages: list[StagePage], judged: list[StagePage]) -> list[tuple[float, bool]]:
    """Each judged page's stage probability from a stage fitted without its group (0 where it does not apply),
    with whether it is evidence."""
    stages = {group: fit_stage([p for p in pages if p.group != group], [REAL_TEXT])
              for group in sorted({page.group for page in judged})}
    return [(stages[p.group].probability(p.log_odds, p.features) if stages[p.group].applies(p.log_odds) else 0.0,
             p.truth) for p in judged]


def _figures(scored: list[tuple[float, bool]], cut: float) -> dict[str, float]:
    """Precision, recall, F1 and false alarms per 100 pages without evidence, at a cut."""
    tp = sum(1 for p, t in scored if p >= cut and t)
    fp = sum(1 for p, t in scored if p >= cut and not t)
    evidence = sum(1 for _, t in scored if t)
    return {"precision": round(tp / max(1, tp + fp), 3), "recall": round(tp / max(1, evidence), 3),
            "f1": round(f1_at(scored, cut), 3),
            "false_alarms_per_100": round(100 * fp / max(1, len(scored) - evidence), 1)}


# How much a real page counts against a written one when the weights are refitted with both. Alone,
# the real pages undo what only written near twins teach (a Taiwan or Western relay is no PRC seller,
# however it reads), and the written-apart gates lose precision; with both, each keeps its part.
REAL_WEIGHT = 3


def scored_pages(settings: Settings, folders: list[Path], text_model_path: Path) -> dict[Path, list[Outcome]]:
    """Each folder's pages scored once with the text models just fitted (which never saw them). Only
    their features are used, to refit weights and to choose cuts, so one scoring serves both when
    the same folder is given for each."""
    scoring = _scoring(settings, text_model_path)
    return {folder: evaluate(folder, scoring)[1] for folder in dict.fromkeys(folders)}


def _scoring(settings: Settings, text_model_path: Path) -> Settings:
    """Settings that score with the text models just fitted, in a data directory of their own."""
    return settings.model_copy(update={"text_model_file": text_model_path, "home": settings.home / "scoring-unused"})


def _weighed(decision: DecisionModel, real: dict[str, list[Outcome]], written: list[Sample]) -> DecisionModel:
    """The decision with its patterns' own weights refitted on the real folders, and the figures of that
    refit held out by real folder (one collection at a time) recorded beside the written ones."""
    by_folder = {name: [sample for outcome in outcomes for sample in outcome.samples(name)]
                 for name, outcomes in real.items()}
    held_out = leave_real_folder_out(decision, by_folder, written, REAL_WEIGHT)
    every = [sample for samples in by_folder.values() for sample in samples]
    weighed = weighed_on(decision, every, written, REAL_WEIGHT)
    return weighed.model_copy(update={
        "sources": [*decision.sources, *(f"weights: {name}" for name in real)],
        "cross_validation": {**decision.cross_validation,
                             **{f"held_out_by_real_folder_{k}": v for k, v in held_out.items()}}})


def refuse_real_pages(folders: list[Path]) -> None:
    """Stop before fitting text models on a folder of real pages (its labels carry a ``split``, as
    tests/fixtures/real_web's do): their text must never give a model its vocabulary, which is kept as strings in a
    shipped file; they teach through their features (``--weigh``), or through coefficients over the written pages'
    vocabulary (``recalibrate --stage``). The easy slip is ``--weigh A B``, which leaves B a folder to fit on."""
    for folder in folders:
        if any(label.split for label in read_labels(folder)):
            raise ConfigError(f"{folder}: its labels carry a split, so these are real pages; give it with --weigh "
                              "(once per folder), not as a folder to fit text models on")


# How many pages a news or commentary page counts as among the new patterns' pages: the generic weights
# should hold an alert on a report about the loophole worse than one on a near miss (the goal is no news
# alert at all). Chosen with the rest of `--new-pattern` on twelve new patterns held out one at a time (README).
NEWS_WEIGHT = 3.0


def new_pattern_samples(settings: Settings, new_patterns: list[tuple[Path, Path]], text_models: TextModels,
                        text_model_path: Path) -> tuple[list[Sample], TextModels]:
    """Each (folder, pattern file): the folder's pages scored with that one pattern file added to the
    library, as a user who adds it would score them, and with text models that never saw the pages;
    the samples of the file's own patterns only. Their pages also fit the text model of the evidence no
    one pattern owns (index.textmodel.NEW_PATTERN_EVIDENCE), returned with the other text models; the samples
    carry its logits from models fitted without their own pattern's folder. The written folders' pages stay out
    of it: with them (each counting 0.3) it did no better on four service patterns written afterwards (round 5,
    docs/generic-path-rounds-2026-12-07.md)."""
    scoring = _scoring(settings, text_model_path)
    scored: list[tuple[str, set[str], Outcome]] = []
    for folder, pattern_file in new_patterns:
        own = {pattern.id for pattern in load_library([pattern_file]).patterns}
        scored += [(folder.name, own, outcome) for outcome in evaluate(folder, scoring, [pattern_file])[1]]
    documents = [Document(outcome.text, frozenset(outcome.label.patterns & own), name, outcome.label.kind)
                 for name, own, outcome in scored]
    held_out = text_models.out_of_fold(NEW_PATTERN_EVIDENCE, documents)
    samples = []
    for (name, own, outcome), evidence in zip(scored, held_out, strict=True):
        counted = NEWS_WEIGHT if outcome.label.kind == "news-commentary" else 1.0
        features = {"evidence_text": logit_feature(evidence)}
        samples += [replace(sample, weight=counted, features={**sample.features, **features})
                    for sample in outcome.samples(name) if sample.pattern_id in own]
    return samples, text_models.with_target(NEW_PATTERN_EVIDENCE, documents)


def _generic_cut(samples: list[Sample], new: list[Sample], model_id: str) -> tuple[float, dict[str, float]]:
    """The generic cut, where patterns the generic weights never saw fare best, and their F1 there: the
    patterns given as YAML files held out one at a time when there are any, else the fitted ones."""
    unseen = leave_new_pattern_out(samples, new, model_id) if new else leave_pattern_out(samples, model_id)
    cut = best_generic_cut(unseen)
    return cut, {f"generic_unseen_pattern_f1:{pid}": round(f1_at(scored, cut), 4) for pid, scored in unseen.items()}


def run_calibration(settings: Settings, folders: list[Path], use_feedback: bool, out: Path | None,
                    tuning: Path | None = None, weighing: list[Path] | None = None,
                    vocabulary: list[Path] | None = None,
                    new_patterns: list[tuple[Path, Path]] | None = None) -> Calibrated:
    """``vocabulary`` folders teach the page text models only. Why: the generic weights decide every
    pattern that has no pages of its own, and folders written to teach one pattern's web genres (relay
    docs against self-hosted gateways) would tilt them, and the cut they are held to, towards that one
    pattern's shapes; as text their words still reach the pattern they were written for. ``new_patterns``
    (folder, pattern file) pairs fit the generic weights and choose their cut (index.decision.fit)."""
    new_patterns = new_patterns or []
    refuse_real_pages([*folders, *(vocabulary or []), *(folder for folder, _ in new_patterns)])
    library = load_library(settings.pattern_files)
    samples, text_models = stacked_samples(labelled_outcomes(folders, settings), library,
                                           labelled_outcomes(vocabulary or [], settings))
    if use_feedback:
        samples += feedback_samples(settings)
    if not samples:
        raise ConfigError("nothing to calibrate on: give a labelled folder or record verdicts with `loophole feedback`")
    model_id = get_embedder(settings.embedding.model, settings.embedding.batch_size).model_id
    sources = ([str(folder) for folder in folders] + [f"text models only: {folder}" for folder in vocabulary or []]
               + [f"new pattern: {folder} ({pattern_file})" for folder, pattern_file in new_patterns]
               + (["feedback"] if use_feedback else []))
    decision_path = out or settings.home / "decision.yaml"
    text_model_path = decision_path.with_name("text_models.npz")
    text_models.save(text_model_path)
    new: list[Sample] = []
    if new_patterns:
        new, text_models = new_pattern_samples(settings, new_patterns, text_models, text_model_path)
        text_models.save(text_model_path)
    held_out = {f"held_out_by_folder_{k}": v for k, v in leave_group_out(samples, model_id).items()}
    generic_cut, generic = _generic_cut(samples, new, model_id)
    decision = fit(samples, model_id, sources=sources, new_patterns=new).model_copy(
        update={"cross_validation": {**held_out, **generic}, "generic_cut": generic_cut})
    save_decision(decision_path, decision)
    scored = scored_pages(settings, [*(weighing or []), *([tuning] if tuning else [])], text_model_path)
    if weighing:
        decision = _weighed(decision, {str(folder): scored[folder] for folder in weighing}, samples)
        save_decision(decision_path, decision)
    if tuning is not None:
        decision = tune_cuts(decision, scored[tuning], tuning)
        save_decision(decision_path, decision)
    return Calibrated(decision, text_models, decision_path, text_model_path)
