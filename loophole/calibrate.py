"""``loophole calibrate``: labelled folders and recorded verdicts in, a calibration file out.

Labelled pages are scored in a throw-away home (as ``loophole eval`` does); verdicts come from
the user's own store, scored as they were when judged. Both become samples for
index.calibration, which fits one threshold per pattern and reports a cross-validated estimate.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from index.calibration import Calibration, Sample, calibrate, save_calibration
from index.detect import DEFAULT_THRESHOLD
from index.embed import get_embedder
from index.feedback import verdict_labels
from index.patterns import load_library
from index.store import Detection, Store
from loophole.config import ConfigError, Settings
from loophole.evaluate import evaluate


def labelled_samples(folder: Path, settings: Settings) -> list[Sample]:
    _, outcomes = evaluate(folder, settings)
    return [Sample(f"{folder}:{s.doc}", s.pattern_id, s.score, s.eligible, s.positive)
            for outcome in outcomes for s in outcome.samples()]


def feedback_samples(settings: Settings) -> list[Sample]:
    """Each judged (document, pattern) with the score it had: a confirmed or dismissed sample."""
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
                if detection is not None:
                    eligible = not (detection.reasons or {}).get("suppressed")
                    samples.append(Sample(f"feedback:{doc_id}", pid, detection.score, eligible, confirmed))
        return samples
    finally:
        store.close()


def run_calibration(settings: Settings, folders: list[Path], use_feedback: bool,
                    out: Path | None) -> tuple[Calibration, Path]:
    library = load_library(settings.pattern_files)
    samples = [s for folder in folders for s in labelled_samples(folder, settings)]
    if use_feedback:
        samples += feedback_samples(settings)
    if not samples:
        raise ConfigError("nothing to calibrate on: give a labelled folder or record verdicts with `loophole feedback`")
    priors = {p.id: p.threshold or DEFAULT_THRESHOLD for p in library.patterns}
    model_id = get_embedder(settings.embedding.model, settings.embedding.batch_size).model_id
    sources = [str(folder) for folder in folders] + (["feedback"] if use_feedback else [])
    calibration = calibrate(samples, priors, library.version, model_id, sources)
    path = out or settings.home / "calibration.yaml"
    save_calibration(path, calibration)
    return calibration, path
