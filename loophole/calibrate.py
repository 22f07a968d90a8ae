"""``loophole calibrate``: labelled folders and recorded verdicts in, a decision model out.

Labelled pages are scored in a throw-away home (as ``loophole eval`` does); verdicts come from
the user's own store, with the features they had when judged. Both become samples for
index.decision, whose weights are fitted and checked by index.crossval: held out by folder
(one writer's pages at a time) and, for the generic weights, by pattern.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from index.crossval import leave_group_out, leave_pattern_out
from index.decision import DecisionModel, Sample, fit, save_decision
from index.embed import get_embedder
from index.feedback import verdict_labels
from index.store import Detection, Store
from loophole.config import ConfigError, Settings
from loophole.evaluate import evaluate


def labelled_samples(folder: Path, settings: Settings) -> list[Sample]:
    _, outcomes = evaluate(folder, settings)
    return [s for outcome in outcomes for s in outcome.samples(folder.name)]


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


def run_calibration(settings: Settings, folders: list[Path], use_feedback: bool,
                    out: Path | None) -> tuple[DecisionModel, Path]:
    samples = [s for folder in folders for s in labelled_samples(folder, settings)]
    if use_feedback:
        samples += feedback_samples(settings)
    if not samples:
        raise ConfigError("nothing to calibrate on: give a labelled folder or record verdicts with `loophole feedback`")
    model_id = get_embedder(settings.embedding.model, settings.embedding.batch_size).model_id
    sources = [str(folder) for folder in folders] + (["feedback"] if use_feedback else [])
    model = fit(samples, model_id, sources=sources)
    held_out = {f"held_out_by_folder_{k}": v for k, v in leave_group_out(samples, model_id).items()}
    generic = leave_pattern_out(samples, model_id)
    figures = {**held_out, **{f"generic_unseen_pattern_f1:{pid}": f1 for pid, f1 in generic.items()}}
    model = model.model_copy(update={"cross_validation": figures})
    path = out or settings.home / "decision.yaml"
    save_decision(path, model)
    return model, path
