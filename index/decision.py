"""The page-level decision: logistic regressions over the evidence features, learned from labels.

Why learned: the features (index.evidence) each say something, but how much a byline should
weigh against a price list or a named chip is a question for labelled pages, not for constants
set by hand. Why logistic: its output is a probability that can be checked for calibration (a
page scored 0.8 should be evidence about four times in five), its coefficients are a few plain
numbers that can be read and stored (no pickles), and it does not overfit a few thousand samples.

Two kinds of weights. A pattern with labelled pages gets its own (shared weights plus its own
departures from them, fitted together, so a pattern with few pages stays near the others). A
pattern without any (one added as a YAML file) is decided by the *generic* weights: fitted on
every pattern's pages over features that mean the same for every pattern (its own similarity
scale, its examples' entity types, the page's genre), so it calibrates itself from its own
examples and counter-examples with no code and no pages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ground.config import ConfigError, read_yaml_mapping
from index.evidence import FEATURES

log = logging.getLogger(__name__)

DEFAULT_CUT = 0.5
LOG_ODDS = "log_odds"     # a stage's first input: the pattern's log-odds from its weights
STAGE_FLOOR = 0.05        # pages the weights all but rule out stay ruled out: a stage only reorders the rest
# The generic weights use the features that mean the same for any pattern: not a page text model, which
# only patterns with labelled pages have. A pattern's own weights leave out the offer/notice cues: they
# were written for fictional pages, and real sellers' pages rarely carry them (measured).
# The evidence text model is fitted on pages of patterns given only as YAML files, so only weights fitted on
# such pages (`new_patterns` in fit) weigh it: the prior that the shipped patterns' own weights are pulled
# towards stays as it was without it, and so do those weights.
NEW_PATTERN_ONLY = ("evidence_text",)
GENERIC_FEATURES = tuple(name for name in FEATURES if name not in ("text", *NEW_PATTERN_ONLY))
NEW_PATTERN_FEATURES = (*GENERIC_FEATURES, *NEW_PATTERN_ONLY)
PATTERN_FEATURES = tuple(name for name in FEATURES if name not in ("genre_primary", *NEW_PATTERN_ONLY))
MIN_SUPPORT = 15      # labelled evidence pages a pattern needs before it gets weights of its own
SHARING = 1.0         # how freely a pattern's own weights may depart from the shared ones


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coefficients: list[float]
    intercept: float
    support: int = 0              # labelled evidence pages they were fitted on


class Recalibration(BaseModel):
    """How one pattern's log-odds are rescaled (slope, offset) so that a shown probability is what such a
    score was worth on real pages (`loophole recalibrate`). Monotone, and the pattern's cut is mapped the
    same way, so exactly the same pages alert: only the number a reader sees changes."""

    model_config = ConfigDict(extra="forbid")
    slope: float = Field(gt=0)
    offset: float
    pages: int = Field(0, ge=0)       # labelled pages it was fitted on
    evidence: int = Field(0, ge=0)    # how many of them were evidence of the pattern
    source: str = ""


class Stage(BaseModel):
    """A second, small logistic regression for one pattern, over its log-odds from the weights and the logit of
    its real-page text model (index.textmodel.real_target), fitted on real and written pages together
    (`loophole recalibrate --stage`). Why a stage and not one more weight: the weights are fitted on written
    pages, where every seller writes as the spec reads; what real sellers' pages share is vocabulary that only
    real pages can teach, and a stage learns how far to trust it from pages it was not fitted on."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[str]                 # "log_odds", then feature names
    mean: list[float]
    scale: list[float]
    coefficients: list[float]
    intercept: float
    floor: float = Field(STAGE_FLOOR, gt=0, lt=1)   # below this probability from the weights it is not used
    cut: float = Field(DEFAULT_CUT, gt=0, lt=1)
    pages: int = Field(0, ge=0)
    evidence: int = Field(0, ge=0)
    source: str = ""

    @model_validator(mode="after")
    def _same_lengths(self) -> Stage:
        if not self.inputs or not len(self.inputs) == len(self.mean) == len(self.scale) == len(self.coefficients):
            raise ValueError("a stage needs as many means, scales and coefficients as inputs")
        if self.inputs[0] != LOG_ODDS or any(scale <= 0 for scale in self.scale):
            raise ValueError(f"a stage's first input is {LOG_ODDS} and every scale is positive")
        return self

    def applies(self, log_odds: float) -> bool:
        return _sigmoid(log_odds) >= self.floor

    def shares(self, log_odds: float, features: dict[str, float]) -> np.ndarray:
        x = np.array([log_odds, *(features.get(name, 0.0) for name in self.inputs[1:])], dtype=np.float64)
        return (x - np.array(self.mean)) / np.array(self.scale) * np.array(self.coefficients)

    def probability(self, log_odds: float, features: dict[str, float]) -> float:
        return _sigmoid(float(self.shares(log_odds, features).sum() + self.intercept))


class DecisionModel(BaseModel):
    """Weights over standardised features, the probability above which a page alerts, and where
    they came from. Fitted for one embedding model: under another, only the generic weights are
    used (the features are on each pattern's own scale, so they travel) until someone refits."""

    model_config = ConfigDict(extra="forbid")
    model_id: str
    features: list[str]
    mean: list[float]
    scale: list[float]
    generic: Weights
    patterns: dict[str, Weights] = {}
    cut: float = Field(DEFAULT_CUT, gt=0, lt=1)
    generic_cut: float = Field(DEFAULT_CUT, gt=0, lt=1)   # for patterns decided by the generic weights
    # Cuts chosen on a folder of real pages (`loophole calibrate --tune-cuts DIR`), where they differ.
    pattern_cuts: dict[str, float] = {}
    cross_validation: dict[str, float] = {}
    created: str = ""
    sources: list[str] = []
    # Fitted on real pages after the weights (`loophole recalibrate`); a refit of the weights drops it.
    recalibration: dict[str, Recalibration] = {}
    # Fitted on real and written pages after the weights (`loophole recalibrate --stage`); a refit drops it.
    stages: dict[str, Stage] = {}

    def cut_for(self, pattern_id: str) -> float:
        if pattern_id in self.stages:
            return self.stages[pattern_id].cut
        if pattern_id in self.pattern_cuts:
            cut = self.pattern_cuts[pattern_id]
        else:
            cut = self.cut if pattern_id in self.patterns else self.generic_cut
        return cut if pattern_id not in self.recalibration else _sigmoid(self._rescaled(pattern_id, _logit(cut)))

    def _rescaled(self, pattern_id: str, log_odds: float) -> float:
        shift = self.recalibration.get(pattern_id)
        return log_odds if shift is None else shift.slope * log_odds + shift.offset

    def weights_for(self, pattern_id: str) -> Weights:
        return self.patterns.get(pattern_id, self.generic)

    def _standard(self, features: dict[str, float]) -> np.ndarray:
        x = np.array([features.get(name, 0.0) for name in self.features], dtype=np.float64)
        return (x - np.array(self.mean)) / np.array(self.scale)

    def log_odds(self, pattern_id: str, features: dict[str, float]) -> float:
        """The log-odds the weights give, before any stage or rescaling."""
        weights = self.weights_for(pattern_id)
        return float(np.dot(self._standard(features), weights.coefficients) + weights.intercept)

    def probability(self, pattern_id: str, features: dict[str, float]) -> float:
        z = self.log_odds(pattern_id, features)
        stage = self.stages.get(pattern_id)
        if stage is not None and stage.applies(z):
            return stage.probability(z, features)
        return _sigmoid(self._rescaled(pattern_id, z))

    def contributions(self, pattern_id: str, features: dict[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds, for "why it fired" (zero shares left out). Where a stage
        decides, the weights' shares are scaled by its weight on their sum, and its other inputs join them."""
        shares = dict(zip(self.features, self._standard(features) * np.array(self.weights_for(pattern_id).coefficients),
                          strict=True))
        stage = self.stages.get(pattern_id)
        z = self.log_odds(pattern_id, features)
        if stage is not None and stage.applies(z):
            shares = {name: share * stage.coefficients[0] / stage.scale[0] for name, share in shares.items()}
            shares.update(zip(stage.inputs[1:], stage.shares(z, features)[1:], strict=True))
        else:
            shift = self.recalibration.get(pattern_id)
            shares = {name: share * (shift.slope if shift else 1.0) for name, share in shares.items()}
        return {name: round(float(share), 3) for name, share in shares.items() if abs(share) >= 0.005}

    def for_model(self, model_id: str) -> DecisionModel:
        """These weights as they may be used with another embedding model: the generic ones only."""
        return self if model_id == self.model_id else self.generic_only()

    def generic_only(self) -> DecisionModel:
        """These weights with every pattern decided by the generic ones, as if given only as a YAML file."""
        return self.model_copy(update={"patterns": {}, "pattern_cuts": {}, "recalibration": {}, "stages": {}})

    def without_recalibration(self) -> DecisionModel:
        """The probabilities as the weights give them, before any rescaling or stage fitted on real pages."""
        return self.model_copy(update={"recalibration": {}, "stages": {}})


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def _logit(p: float) -> float:
    clipped = min(max(p, 1e-9), 1.0 - 1e-9)
    return float(np.log(clipped / (1.0 - clipped)))


def fit_recalibration(scored: Sequence[tuple[float, bool]], source: str = "") -> Recalibration:
    """Platt scaling of one pattern's probabilities: the truth regressed on their log-odds, unregularised
    (two numbers, fitted on pages the weights never saw). Why not isotonic: a few hundred pages and a few
    dozen evidence pages give a step function with steps where the pages happened to fall."""
    from sklearn.linear_model import LogisticRegression  # only fitting needs sklearn

    y = np.array([truth for _, truth in scored], dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ConfigError("recalibration needs labelled pages both with and without evidence of the pattern")
    x = np.array([[_logit(p)] for p, _ in scored])
    if x[y == 0].max() < x[y == 1].min():
        raise ConfigError("these pages' scores separate evidence from the rest perfectly: they say nothing about what "
                          "a score in the middle is worth")
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(x, y)
    slope, offset = float(model.coef_[0][0]), float(model.intercept_[0])
    if slope <= 0:
        raise ConfigError(f"the scores do not rank these pages (slope {slope:.3f}): nothing to rescale")
    return Recalibration(slope=round(slope, 5), offset=round(offset, 5), pages=len(y), evidence=int(y.sum()),
                         source=source)


@dataclass(frozen=True)
class StagePage:
    """One labelled page as a stage sees it: the pattern's log-odds from its weights, the stage's other inputs,
    whether it is evidence, how much it counts in the fit, and the group it is held out with."""

    log_odds: float
    features: dict[str, float]
    truth: bool
    weight: float = 1.0
    group: str = ""


def fit_stage(pages: Sequence[StagePage], inputs: Sequence[str], source: str = "") -> Stage:
    """A stage (see Stage) fitted by a logistic regression (C 1.0) on the pages where it applies, its inputs
    standardised there. Its cut is left at the default: it is chosen on pages the stage was not fitted on."""
    from sklearn.linear_model import LogisticRegression  # only fitting needs sklearn

    used = [page for page in pages if _sigmoid(page.log_odds) >= STAGE_FLOOR]
    y = np.array([page.truth for page in used], dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ConfigError("a stage needs labelled pages both with and without evidence of the pattern")
    x = np.array([[page.log_odds, *(page.features.get(name, 0.0) for name in inputs)] for page in used])
    mean, spread = x.mean(axis=0), x.std(axis=0)
    scale = np.where(spread > 1e-4, spread, 1.0)   # an input that does not vary here is left as it is
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y,
                                                         sample_weight=[page.weight for page in used])
    return Stage(inputs=[LOG_ODDS, *inputs], mean=_rounded(mean), scale=_rounded(scale),
                 coefficients=_rounded(model.coef_[0]), intercept=round(float(model.intercept_[0]), 5),
                 pages=len(used), evidence=int(y.sum()), source=source)


def read_decision(path: Path) -> DecisionModel:
    """One decision file, or a ConfigError naming the file and the first field that is wrong."""
    try:
        return DecisionModel.model_validate(read_yaml_mapping(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: invalid decision file: {first['msg']} at "
                          f"{'.'.join(str(p) for p in first['loc'])}") from exc


def load_decision(paths: Iterable[Path], model_id: str) -> DecisionModel | None:
    """The last decision file found, for this embedding model (see DecisionModel.for_model)."""
    chosen = None
    for path in paths:
        if not Path(path).exists():
            continue
        model = read_decision(Path(path))
        if list(model.features) != list(FEATURES):
            log.warning("%s: fitted on other features; ignored until `loophole calibrate`", path)
            continue
        if model.model_id != model_id:
            log.warning("%s: fitted for embedding model %s, not %s: only its generic weights apply "
                        "until `loophole calibrate`", path, model.model_id, model_id)
        chosen = model.for_model(model_id)
    return chosen


def untrained(model_id: str) -> DecisionModel:
    """Weights that never alert: what a data directory without any decision model runs on, so
    that pages are still stored and scored (and can be calibrated on) while nothing is sent."""
    zeros = [0.0] * len(FEATURES)
    return DecisionModel(model_id=model_id, features=list(FEATURES), mean=zeros, scale=[1.0] * len(FEATURES),
                         generic=Weights(coefficients=zeros, intercept=-20.0))


def save_decision(path: Path, model: DecisionModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by `loophole calibrate`: how evidence features become an alert's probability.\n"
    body = yaml.safe_dump(model.model_dump(), allow_unicode=True, sort_keys=False, width=120)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class Sample:
    """One page scored for one pattern, with the truth; ``group`` is who wrote the page (a
    corpus), so cross-validation can hold a whole writer out."""

    doc: str
    pattern_id: str
    features: dict[str, float]
    positive: bool
    group: str = ""
    weight: float = 1.0       # how many pages it counts as in a fit (index.decision.fit's new_patterns)


def _matrix(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([[s.features.get(name, 0.0) for name in FEATURES] for s in samples], dtype=np.float64)


# Features that can only add to the evidence (more similarity, more of the pattern's entity types,
# a page that reads as an offer or a notice) and features that can only take from it (reporting
# cues, an exclusion): their weights keep these signs, so the model stays monotone and its "why"
# reads the right way round; the rest may go either way.
ADDING = frozenset({"over_counters", "rivalry", "margin", "breadth", "types_unit", "types_page",
                    "types_over_counters", "keywords",
                    "genre_primary", "example_text", "text", "evidence_text"})
TAKING = frozenset({"reporting", "genre_news", "genre_other", "excluded", "near_miss", "news_lead"})


def _bounds(names: Sequence[str]) -> list[tuple[float | None, float | None]]:
    return [(0.0, None) if name in ADDING else (None, 0.0) if name in TAKING else (None, None) for name in names]


def _logistic(z: np.ndarray, y: np.ndarray, regularisation: float, prior: np.ndarray | None = None,
              names: Sequence[str] = FEATURES, counts: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression with sign bounds (scipy's L-BFGS-B), its weights pulled
    towards ``prior`` (the generic weights, for a pattern's own) rather than towards zero; ``counts``
    says how many pages each row counts as (1 each by default)."""
    from scipy.optimize import minimize  # only fitting needs scipy

    centre = np.zeros(z.shape[1]) if prior is None else np.asarray(prior, dtype=np.float64)
    signs = 2.0 * y - 1.0
    counted = np.ones(len(y)) if counts is None else np.asarray(counts, dtype=np.float64)
    bounds = _bounds(names)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        margin = signs * (z @ w + b)
        value = (counted * np.logaddexp(0.0, -margin)).sum() + 0.5 / regularisation * np.sum((w - centre) ** 2)
        slope = -signs * counted / (1.0 + np.exp(margin))   # d loss / d score
        grad = np.append(z.T @ slope + (w - centre) / regularisation, slope.sum())
        return float(value), grad

    low = np.array([-np.inf if lo is None else lo for lo, _ in bounds])
    high = np.array([np.inf if hi is None else hi for _, hi in bounds])
    start = np.append(np.clip(centre, low, high), 0.0)
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[*bounds, (None, None)])
    return result.x[:-1], float(result.x[-1])


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


def _fit_columns(z: np.ndarray, y: np.ndarray, names: Sequence[str], regularisation: float,
                 prior: np.ndarray | None = None, counts: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Weights over the named features only (the others stay 0), in FEATURES order."""
    columns = [FEATURES.index(name) for name in names]
    coefficients, intercept = _logistic(z[:, columns], y, regularisation,
                                        None if prior is None else prior[columns], names, counts)
    full = np.zeros(len(FEATURES))
    full[columns] = coefficients
    return full, intercept


def _generic_weights(z: np.ndarray, y: np.ndarray, regularisation: float, counts: np.ndarray | None = None,
                     names: Sequence[str] = GENERIC_FEATURES) -> Weights:
    coefficients, intercept = _fit_columns(z, y, names, regularisation, counts=counts)
    return Weights(coefficients=_rounded(coefficients), intercept=round(intercept, 5), support=int(y.sum()))


def _pattern_weights(z: np.ndarray, y: np.ndarray, pattern_ids: Sequence[str], own: Sequence[str],
                     regularisation: float, generic: Weights) -> dict[str, Weights]:
    """Each pattern's weights, fitted on its own pages and pulled towards the generic ones: a pattern
    with few pages stays near them, one with many finds its own (notices count for the police pattern,
    offers for the reseller one)."""
    ids = np.array(pattern_ids)
    prior = np.array(generic.coefficients)
    weights = {}
    for pid in own:
        mine = ids == pid
        coefficients, intercept = _fit_columns(z[mine], y[mine], PATTERN_FEATURES, regularisation * SHARING, prior)
        weights[pid] = Weights(coefficients=_rounded(coefficients), intercept=round(intercept, 5),
                               support=int(y[mine].sum()))
    return weights


def fit(samples: Sequence[Sample], model_id: str, regularisation: float = 1.0, cut: float = DEFAULT_CUT,
        sources: Sequence[str] = (), new_patterns: Sequence[Sample] = ()) -> DecisionModel:
    """Generic weights for every pattern, and own weights for patterns with MIN_SUPPORT labelled pages.

    ``new_patterns`` are samples of patterns given only as YAML files, scored on pages written apart for
    them. Given any, the generic weights (which decide every pattern without weights of its own) are
    fitted on them alone, each counted its ``weight``. Why: such a pattern's features behave as they do
    for five examples, not for the shipped patterns' dozens (its own text model only tells the subject
    apart; five sentences set its similarity scale). Held out one new pattern at a time among sixteen,
    weights fitted so did better than weights fitted on the shipped patterns' pages; on four patterns
    written afterwards they did not, so the shipped model is not fitted so (README, "Patterns nobody
    tuned for"). The scale, and the generic weights the shipped patterns' own weights are pulled
    towards, stay those of ``samples``: adding a new pattern's pages moves no shipped pattern's weights."""
    y = _truths(samples, "calibration needs labelled pages both with and without evidence")
    mean, scale = standardisation(samples, new_patterns)
    z = (_matrix(samples) - mean) / scale
    pattern_ids = [s.pattern_id for s in samples]
    own = sorted(pid for pid in set(pattern_ids) if sum(1 for s in samples if s.pattern_id == pid and s.positive)
                 >= MIN_SUPPORT)
    prior = _generic_weights(z, y, regularisation)
    generic = new_pattern_weights(new_patterns, mean, scale, regularisation) if new_patterns else prior
    return DecisionModel(model_id=model_id, features=list(FEATURES),
                         mean=[round(float(m), 5) for m in mean], scale=[round(float(s), 5) for s in scale],
                         generic=generic,
                         patterns=_pattern_weights(z, y, pattern_ids, own, regularisation, prior),
                         cut=cut, created=datetime.now(UTC).isoformat(timespec="seconds"), sources=list(sources))


def _truths(samples: Sequence[Sample], missing_class: str) -> np.ndarray:
    y = np.array([s.positive for s in samples], dtype=np.int64)
    if len(set(y.tolist())) < 2:
        raise ConfigError(missing_class)
    return y


def standardisation(samples: Sequence[Sample], new_patterns: Sequence[Sample] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and spread over the samples (unrounded; the model stores them rounded); for the
    features only new patterns' weights use, over the new patterns' samples, where there are any."""
    mean, scale = _spread(_matrix(samples))
    if new_patterns:
        columns = [FEATURES.index(name) for name in NEW_PATTERN_ONLY]
        new_mean, new_scale = _spread(_matrix(new_patterns))
        mean[columns], scale[columns] = new_mean[columns], new_scale[columns]
    return mean, scale


def _spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)


def new_pattern_weights(samples: Sequence[Sample], mean: np.ndarray, scale: np.ndarray,
                        regularisation: float = 1.0) -> Weights:
    """The generic weights fitted on new patterns' samples alone, on the fitted patterns' scale (see fit)."""
    y = _truths(samples, "the new patterns' pages need both evidence and pages without it")
    z = (_matrix(samples) - mean) / scale
    return _generic_weights(z, y, regularisation, np.array([s.weight for s in samples]), NEW_PATTERN_FEATURES)


MIN_WEIGHING_POSITIVES = 15   # evidence pages of a pattern the real pages need to adjust its weights


def weighed_on(decision: DecisionModel, real: Sequence[Sample], written: Sequence[Sample] = (),
               real_weight: int = 1, regularisation: float = 1.0) -> DecisionModel:
    """The decision with each pattern's own weights refitted on real pages (``real``, each counted
    ``real_weight`` times) together with the written ones, pulled towards the weights fitted on the
    written pages alone, on the same standardised scale.

    Why: written pages teach the vocabulary (the text models are fitted on nothing else, so no real
    page's words end up in a shipped file), but how much a feature weighs on the web is for real pages
    to say: an API address on the page's own site all but decides on real pages and says little among
    written near twins. Only the weights move (a few numbers per pattern), and only for patterns with
    MIN_WEIGHING_POSITIVES evidence pages among the real ones; the generic weights stay as they were."""
    samples = [*written, *(sample for sample in real for _ in range(real_weight))]
    z = (_matrix(samples) - np.array(decision.mean)) / np.array(decision.scale)
    y = np.array([s.positive for s in samples], dtype=np.int64)
    ids = np.array([s.pattern_id for s in samples])
    weights = dict(decision.patterns)
    for pid, own in decision.patterns.items():
        if sum(1 for s in real if s.pattern_id == pid and s.positive) < MIN_WEIGHING_POSITIVES:
            continue
        mine = ids == pid
        coefficients, intercept = _fit_columns(z[mine], y[mine], PATTERN_FEATURES, regularisation,
                                               np.array(own.coefficients))
        weights[pid] = Weights(coefficients=_rounded(coefficients), intercept=round(intercept, 5),
                               support=int(y[mine].sum()))
    return decision.model_copy(update={"patterns": weights})
