"""Page text models: character n-gram logistic regressions, one per pattern with labelled pages.

Why: real sellers' pages (a relay's pricing table, an account shop's after-sales rules, a
tutorial that ends with the author's invite code) resemble no single example sentence, but their
vocabulary gives them away as a whole (令牌, 倍率, 充值, 质保 next to GPT and Claude). A linear
model over character n-grams reads that vocabulary, in Chinese without a word segmenter, and
ranks real seller pages far better than sentence similarity does (measured in the README). Its
logit is one more feature of the decision (index.decision), for the patterns it was trained for.

Stored as plain arrays (numpy ``.npz``, read with ``allow_pickle=False``): the n-gram vocabulary,
its inverse document frequencies and each pattern's coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.sparse import spmatrix
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ground.config import ConfigError

OPENING_CHARS = 3000          # the text a page is judged by: its title and opening, as a reader sees it
NGRAMS = (1, 3)
MAX_FEATURES = 20000
REGULARISATION = 3.0


def opening(title: str, text: str) -> str:
    return f"{title}\n{text[:OPENING_CHARS]}"


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:

    return TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, min_df=2,
                           max_features=MAX_FEATURES, vocabulary=vocabulary, dtype=np.float32)


def _fitted_vectorizer(texts: list[str]) -> TfidfVectorizer:
    """The MAX_FEATURES most frequent n-grams (in two texts or more), ties broken by the n-gram itself.

    Why not sklearn's ``max_features``: it ranks with an unstable sort, and numpy chooses that sort by the
    CPU's vector instructions, so n-grams tied at the cut-off came out differently on another machine (244 of
    20,000 when the written pages were refitted on 2026-12-07), and every page text model with them."""
    counter = CountVectorizer(analyzer="char_wb", ngram_range=NGRAMS, min_df=2, dtype=np.float32)
    counts = counter.fit_transform(texts)
    grams = counter.get_feature_names_out()          # in column order, which is the n-grams' own
    columns = np.sort(np.lexsort((grams, -np.asarray(counts.sum(axis=0)).ravel()))[:MAX_FEATURES])
    vectorizer = _vectorizer({str(gram): i for i, gram in enumerate(grams[columns])})
    # The inverse document frequencies from the counts already made: the texts are read once, not twice.
    vectorizer.idf_ = TfidfTransformer(sublinear_tf=True).fit(counts[:, columns]).idf_
    return vectorizer


@dataclass
class TextModels:
    """N-gram vocabulary and per-target weights; ``scores`` gives each target's logit for a text."""

    vocabulary: list[str]
    idf: np.ndarray
    weights: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._vectorizer = _vectorizer({gram: i for i, gram in enumerate(self.vocabulary)})
        self._vectorizer.idf_ = self.idf

    def scores(self, text: str) -> dict[str, float]:
        if not self.weights:
            return {}
        row = self._vectorizer.transform([text])
        return {target: float((row @ coefficients)[0] + intercept)
                for target, (coefficients, intercept) in self.weights.items()}

    def with_target(self, target: str, documents: Sequence[Document]) -> TextModels:
        """These models and one more target, fitted on ``documents`` through the same vocabulary, so that
        the targets already here score exactly as before."""
        fitted = _fit_target(target, documents, self._vectorizer.transform([d.text for d in documents]))
        return TextModels(self.vocabulary, self.idf, {**self.weights, target: fitted})

    def out_of_fold(self, target: str, documents: Sequence[Document]) -> list[float]:
        """Each document's logit for ``target`` from a model fitted without its group (for the new patterns'
        pages, a group is a pattern): the feature the decision must be fitted on, as in out_of_fold_scores.
        The vocabulary is fixed, so each page is read through it once; only the fits repeat."""
        x = self._vectorizer.transform([d.text for d in documents])
        groups = np.array([d.group for d in documents])
        scores = np.zeros(len(documents))
        for group in sorted(set(groups.tolist())):
            held = groups == group
            others = [d for d, out in zip(documents, held, strict=True) if not out]
            coefficients, intercept = _fit_target(target, others, x[~held])
            scores[held] = x[held] @ coefficients + intercept
        return scores.tolist()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        targets = sorted(self.weights)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, vocabulary=np.array(self.vocabulary, dtype=str), idf=self.idf.astype(np.float32),
                            targets=np.array(targets, dtype=str),
                            coefficients=np.array([self.weights[t][0] for t in targets], dtype=np.float32),
                            intercepts=np.array([self.weights[t][1] for t in targets], dtype=np.float64))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TextModels:
        try:
            with np.load(path, allow_pickle=False) as data:
                targets = [str(t) for t in data["targets"]]
                weights = {t: (data["coefficients"][i], float(data["intercepts"][i])) for i, t in enumerate(targets)}
                return cls([str(g) for g in data["vocabulary"]], data["idf"], weights)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise ConfigError(f"{path}: not a text-model file ({exc})") from exc


def load_text_models(paths: Sequence[Path]) -> TextModels | None:
    """The last text-model file found, or None (the decision then runs without page text models)."""
    found = [Path(p) for p in paths if Path(p).exists()]
    return TextModels.load(found[-1]) if found else None


REPORTING = "reporting"       # the target "this page reports on or comments about its subject"
# The target "this page is evidence of the pattern it was written for", fitted on the pages of patterns given
# only as YAML files (`loophole calibrate --new-pattern`): the language of evidence that no one pattern owns.
NEW_PATTERN_EVIDENCE = "new-pattern-evidence"
# A pattern's text model fitted with real pages among its pages (`loophole recalibrate --stage`), through the
# vocabulary fitted on written pages: its coefficients are learned from real pages, but no string of theirs is kept.
REAL_PAGES = "real:"


def real_target(pattern_id: str) -> str:
    return REAL_PAGES + pattern_id


@dataclass(frozen=True)
class Document:
    """A labelled page for fitting: its opening, the patterns it is evidence of, who wrote it, its kind."""

    text: str
    patterns: frozenset[str]
    group: str
    kind: str = ""

    def is_a(self, target: str) -> bool:
        target = target.removeprefix(REAL_PAGES)
        if target == REPORTING:
            return self.kind == "news-commentary"
        return bool(self.patterns) if target == NEW_PATTERN_EVIDENCE else target in self.patterns


def _fit_target(target: str, documents: Sequence[Document], x: spmatrix) -> tuple[np.ndarray, float]:
    y = np.array([d.is_a(target) for d in documents])
    if not 0 < y.sum() < len(y):
        raise ConfigError(f"text model {target}: its pages need both evidence and pages without it")
    return _fit_one(x, y)


def _fit_one(x: spmatrix, y: np.ndarray) -> tuple[np.ndarray, float]:
    # Balanced classes: evidence is one page in ten, and the logit should rank, not guess the base rate.
    model = LogisticRegression(C=REGULARISATION, max_iter=5000, class_weight="balanced").fit(x, y)
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def fit_text_models(documents: Sequence[Document], targets: Sequence[str],
                    extra: dict[str, list[tuple[str, bool]]] | None = None) -> TextModels:
    """One model per target (a pattern, or REPORTING for news and commentary) over a shared vocabulary.
    ``extra`` adds a target's own example and counter-example sentences as short labelled texts: the
    pattern author's words count too."""
    extra = extra or {}
    texts = [d.text for d in documents]
    vectorizer = _fitted_vectorizer(texts + [t for pairs in extra.values() for t, _ in pairs])
    weights = {}
    for target in targets:
        own = extra.get(target, [])
        x = vectorizer.transform(texts + [t for t, _ in own])
        y = np.array([d.is_a(target) for d in documents] + [label for _, label in own])
        if 0 < y.sum() < len(y):
            weights[target] = _fit_one(x, y)
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    return TextModels(vocabulary, vectorizer.idf_.astype(np.float32), weights)


def out_of_fold_scores(documents: Sequence[Document], targets: Sequence[str],
                       extra: dict[str, list[tuple[str, bool]]] | None = None) -> list[dict[str, float]]:
    """Each document scored by models fitted without its writer's folder: what the decision model
    must be fitted on, since in-sample logits would make it trust the text model far too much."""
    scores: list[dict[str, float]] = [{} for _ in documents]
    for group in sorted({d.group for d in documents}):
        held = [i for i, d in enumerate(documents) if d.group == group]
        models = fit_text_models([d for d in documents if d.group != group], targets, extra)
        for i in held:
            scores[i] = models.scores(documents[i].text)
    return scores


EXAMPLE_FOLDS = 5


@dataclass
class ExampleTextModel:
    """A pattern's own text model, fitted on nothing but its author's sentences: the examples against
    the counter-examples, ordinary web sentences and the other patterns' examples. Every pattern has
    one, a pattern added as a YAML file included, so it calibrates itself from its own examples.
    ``score`` is on the pattern's own scale: 0 where its counter-examples score and 1 where its
    examples do, each scored by a model that did not see it (cross-validated)."""

    vectorizer: TfidfVectorizer
    coefficients: np.ndarray
    intercept: float
    low: float
    high: float

    def score(self, text: str) -> float:
        logit = float((self.vectorizer.transform([text]) @ self.coefficients)[0] + self.intercept)
        return (logit - self.low) / max(self.high - self.low, 1e-6)

    @property
    def separates(self) -> bool:
        """Whether an example held out scores above the counter-examples. With a handful of examples
        it often does not (five of the eight patterns written as YAML files for the tests, with 4-6 examples),
        and then every page on the subject scores at the clip: the feature says "on topic", no more."""
        return self.high > self.low


def _fit_sentences(texts: list[str], labels: np.ndarray) -> tuple[TfidfVectorizer, np.ndarray, float]:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, dtype=np.float32)
    x = vectorizer.fit_transform(texts)
    coefficients, intercept = _fit_one(x, labels)
    return vectorizer, coefficients, intercept


def example_text_model(examples: Sequence[str], counters: Sequence[str], background: Sequence[str],
                       others: Sequence[str]) -> ExampleTextModel | None:
    """None for a pattern with fewer than two examples (nothing to cross-validate). The same sentences
    give the same model, so it is fitted once per process: a detector is built for every labelled folder
    scored (eval, calibrate, the quality gate), and fitting these took 30% of scoring forty pages (measured)."""
    return _example_text_model(tuple(examples), tuple(counters), tuple(background), tuple(others))


@lru_cache(maxsize=32)
def _example_text_model(examples: tuple[str, ...], counters: tuple[str, ...], background: tuple[str, ...],
                        others: tuple[str, ...]) -> ExampleTextModel | None:
    if len(examples) < 2:
        return None
    texts = [*examples, *counters, *background, *others]
    labels = np.array([True] * len(examples) + [False] * (len(texts) - len(examples)))
    held = _held_out_logits(texts, labels)
    vectorizer, coefficients, intercept = _fit_sentences(texts, labels)
    low = float(np.mean(held[len(examples):len(examples) + len(counters)])) if counters else float(
        np.mean(held[len(examples):]))
    return ExampleTextModel(vectorizer, coefficients, intercept, low, float(np.mean(held[:len(examples)])))


def _held_out_logits(texts: list[str], labels: np.ndarray) -> np.ndarray:
    """Each sentence scored by a model fitted on the other folds (folds interleave the classes)."""
    held = np.zeros(len(texts))
    order = np.arange(len(texts))
    for fold in range(EXAMPLE_FOLDS):
        test = order % EXAMPLE_FOLDS == fold
        train = ~test
        if labels[train].all() or not labels[train].any():
            continue
        vectorizer, coefficients, intercept = _fit_sentences([t for t, k in zip(texts, train, strict=True) if k],
                                                             labels[train])
        held[test] = vectorizer.transform([t for t, k in zip(texts, test, strict=True) if k]) @ coefficients + intercept
    return held
