"""Evidence first: what a page is counts in its rank, beside how well it matches the query.

Why: analysts search for the evidence (a tender, a listing, a reseller's ad), and commentary
about the same thing uses the same words, often better ones. Relevance alone puts the article
explaining a pattern above the notice that is the pattern. So, in the default "evidence" view, a
page's relevance (reciprocal ranks from the dense and keyword retrievers, 1.0 for first in both)
is joined by what the store knows of it:

* its alerts: a page flagged for a pattern (a detection over its threshold, or an alert not
  dismissed; a confirmed one more) gains in proportion to how much the query is about that
  pattern, read from the query's closeness to the pattern library's descriptions and examples;
  any alert gains a little whatever the query;
* its kind: primary sources (notices, listings, ads, vendor pages) over commentary and the rest;
* its listed parties (a buyer or vendor on a restriction list) and its procurement stage (an
  award or contract over a tender, over an intention or a cancellation).

The "everything" view is relevance alone. Weights are set on the dev corpus with the tuning
queries (README, "Search and the web app"), never on the held-out sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select

from extract.kind import EVIDENCE_KINDS
from index.entities import Watchlist, fold
from index.patterns import PatternLibrary
from index.store import Alert, Detection, Document, Feedback, PartyMatch, Store

if TYPE_CHECKING:   # the model's libraries load only where a search runs
    from index.embed import Embedder

VIEWS = ("evidence", "everything")
RRF_K = 30                  # reciprocal-rank damping: rank 10 keeps 0.78 of rank 1, rank 100 0.24
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
PATTERN_BONUS = 0.6         # a page flagged for the pattern the query is wholly about
ANY_ALERT_BONUS = 0.1       # a page flagged for any pattern
PRIMARY_BONUS = 0.25        # a primary source
LISTED_BONUS = 0.05         # a party on a restriction list
STAGE_BONUS = 0.05          # times the stage's weight below
CONFIRMED = 1.25            # an analyst's confirmation over a detection alone
STAGE_WEIGHT = {"award": 1.0, "contract": 1.0, "tender": 0.7, "tenderAmendment": 0.5, "planning": 0.4,
                "tenderCancellation": 0.0}
FIRST_PAGE = 10             # the page balanced between languages
LANGUAGE_FLOOR = 3          # pages of each language wanted there
BALANCE_SCORE_RATIO = 0.8   # ... if they score at least this share of the page's last one
BALANCED_LANGUAGES = ("zh", "en")
BALANCE_AFFINITY = 0.5      # only pages flagged for a pattern the query is at least half about are raised
AFFINITY_TEMPERATURE = 0.02  # softmax over the query's cosine with each pattern
AFFINITY_FLOOR = 0.25        # a query no nearer than this to any pattern is about none
AFFINITY_FULL = 0.40         # ... and at least this near is wholly about its nearest ones
CUE_PRIOR = 1.0              # a pattern whose every cue group the query names


@dataclass
class DocumentSignals:
    """What the store knows of the pages, kept in memory: one search reads it for hundreds of pages."""

    secondary: set[int] = field(default_factory=set)                    # not a primary source
    evidence: dict[int, dict[str, float]] = field(default_factory=dict)  # doc -> pattern -> weight
    listed: set[int] = field(default_factory=set)
    stage: dict[int, float] = field(default_factory=dict)
    lang: dict[int, str] = field(default_factory=dict)                  # zh or en (others are not balanced)
    state: tuple[Any, ...] = ()

    def about(self, doc_id: int, affinity: dict[str, float]) -> float:
        """How much the page is flagged for what the query is about (0: for nothing it asks)."""
        return sum(weight * affinity.get(pid, 0.0) for pid, weight in self.evidence.get(doc_id, {}).items())

    def bonus(self, doc_id: int, affinity: dict[str, float]) -> float:
        patterns = self.evidence.get(doc_id, {})
        score = PATTERN_BONUS * self.about(doc_id, affinity)
        score += ANY_ALERT_BONUS * max(patterns.values(), default=0.0)
        score += 0.0 if doc_id in self.secondary else PRIMARY_BONUS
        score += LISTED_BONUS * (doc_id in self.listed) + STAGE_BONUS * self.stage.get(doc_id, 0.0)
        return score


def signals_state(store: Store) -> tuple[Any, ...]:
    """Changes when any signal may have: new or changed pages, detections, alerts, verdicts, list matches."""
    probes = (select(func.count(Document.id)), select(func.max(Document.updated_at)), select(func.max(Detection.id)),
              select(func.count(Alert.id)), select(func.count(Feedback.id)), select(func.max(PartyMatch.id)))
    with store.session() as session:
        return tuple(session.scalar(probe) for probe in probes)


def load_signals(store: Store) -> DocumentSignals:
    signals = DocumentSignals(state=signals_state(store))
    with store.session() as session:
        for doc_id, kind, fields, lang in session.execute(
                select(Document.id, Document.kind, Document.fields, Document.lang)):
            if kind not in EVIDENCE_KINDS:
                signals.secondary.add(doc_id)
            if lang in BALANCED_LANGUAGES:
                signals.lang[doc_id] = lang
            stage = STAGE_WEIGHT.get(str((fields or {}).get("notice_type") or ""))
            if stage:
                signals.stage[doc_id] = stage
        for doc_id, pattern_id in session.execute(select(Detection.doc_id, Detection.pattern_id)
                                                  .where(Detection.flagged)):
            signals.evidence.setdefault(doc_id, {})[pattern_id] = 1.0
        for doc_id, pattern_id, status in session.execute(select(Alert.doc_id, Alert.pattern_id, Alert.status)):
            _apply_alert(signals.evidence.setdefault(doc_id, {}), pattern_id, status)
        signals.listed = set(session.scalars(select(PartyMatch.doc_id).where(PartyMatch.strength == "listed")))
    signals.evidence = {doc_id: found for doc_id, found in signals.evidence.items() if found}
    return signals


def _apply_alert(patterns: dict[str, float], pattern_id: str, status: str) -> None:
    """An analyst's verdict outranks the detector: dismissed is no evidence, confirmed is more."""
    if status == "dismissed":
        patterns.pop(pattern_id, None)
    else:
        patterns[pattern_id] = CONFIRMED if status == "confirmed" else max(patterns.get(pattern_id, 0.0), 1.0)


class PatternAffinity:
    """How much a query is about each pattern. Two readings, added: its cosine with each pattern's
    centroid (its description and the mean of its examples), sharpened by a softmax and scaled
    down when the query is near none of them (a model number, a company name); and the entity types
    its examples name often, when the query names two of them (a police buyer and a US chip) or
    one that no other pattern's examples name often.
    The names settle what the wording leaves close ("a government buyer subscribes to Bedrock"
    reads much like a reseller's offer)."""

    def __init__(self, library: PatternLibrary, embedder: Embedder, watchlist: Watchlist | None = None) -> None:
        self.ids = [pattern.id for pattern in library.patterns]
        self.watchlist = watchlist
        self.cues = [frequent_types(pattern.examples, watchlist) for pattern in library.patterns]
        # A type only one pattern's examples name often (a reseller's "through a Hong Kong entity")
        # points at that pattern on its own; shared ones (a US cloud) need a second.
        self.own_cues = [cues - set().union(*(other for other in self.cues if other is not cues))
                         for cues in self.cues]
        centroids = []
        for pattern in library.patterns:
            description = embedder.encode([pattern.description])[0]
            examples = embedder.encode(pattern.examples).mean(axis=0)
            centroid = description + examples / (np.linalg.norm(examples) or 1.0)
            centroids.append(centroid / (np.linalg.norm(centroid) or 1.0))
        self.centroids = np.array(centroids, dtype=np.float32).reshape(len(self.ids), embedder.dimension)

    def of(self, vector: np.ndarray, text: str = "") -> dict[str, float]:
        if not self.ids:
            return {}
        cosines = self.centroids @ vector
        weights = np.exp((cosines - cosines.max()) / AFFINITY_TEMPERATURE)
        confidence = np.clip((cosines.max() - AFFINITY_FLOOR) / (AFFINITY_FULL - AFFINITY_FLOOR), 0.0, 1.0)
        weights = weights / weights.sum() * confidence + CUE_PRIOR * self._named_cues(text)
        total = max(1.0, float(weights.sum()))
        return {pid: float(w) / total for pid, w in zip(self.ids, weights, strict=True) if w > 1e-3}

    def _named_cues(self, text: str) -> np.ndarray:
        types = {hit.type for hit in self.watchlist.find(text)} if self.watchlist and text else set()
        return np.array([bool(cues) and (len(cues & types) >= min(2, len(cues)) or bool(own & types))
                         for cues, own in zip(self.cues, self.own_cues, strict=True)], dtype=np.float64)


CUE_SHARE = 0.4   # a type named by this share of a pattern's examples is one of its cues


def frequent_types(examples: Sequence[str], watchlist: Watchlist | None) -> set[str]:
    """The entity types a pattern's examples name often (a police buyer, an NVIDIA chip): read off
    its examples, as detection reads them, rather than written by hand."""
    if watchlist is None or not examples:
        return set()
    counts: dict[str, int] = {}
    for example in examples:
        for kind in watchlist.types_in(fold(example)) - {"prc-tie"}:
            counts[kind] = counts.get(kind, 0) + 1
    return {kind for kind, count in counts.items() if count >= CUE_SHARE * len(examples)}


def reciprocal_ranks(ranked: Sequence[int], weight: float) -> dict[int, float]:
    """1.0 for first place, decaying with rank: the retrievers' scores are not comparable, their ranks are."""
    return {doc_id: weight * (RRF_K + 1) / (RRF_K + rank) for rank, doc_id in enumerate(ranked, start=1)}


def relevance(dense: Sequence[int], lexical: Sequence[int]) -> dict[int, float]:
    """Each page's relevance in [0, 1]: its weighted reciprocal ranks in the two retrievers."""
    total = DENSE_WEIGHT + LEXICAL_WEIGHT
    fused: dict[int, float] = {}
    for ranked, weight in ((dense, DENSE_WEIGHT), (lexical, LEXICAL_WEIGHT)):
        for doc_id, score in reciprocal_ranks(ranked, weight / total).items():
            fused[doc_id] = fused.get(doc_id, 0.0) + score
    return fused


def rank(relevant: dict[int, float], view: str, signals: DocumentSignals | None,
         affinity: dict[str, float]) -> list[tuple[int, float]]:
    """(doc id, score), best first: relevance alone for "everything"; for "evidence", plus the page's
    signals, with both languages on the first page (:func:`balance_languages`)."""
    if view != "evidence" or signals is None:
        return sorted(relevant.items(), key=lambda item: (-item[1], item[0]))
    scored = {doc_id: score + signals.bonus(doc_id, affinity) for doc_id, score in relevant.items()}
    evidence = {doc_id for doc_id in relevant if signals.about(doc_id, affinity) >= BALANCE_AFFINITY}
    return balance_languages(sorted(scored.items(), key=lambda item: (-item[1], item[0])), signals.lang, evidence)


def balance_languages(ranked: list[tuple[int, float]], lang: dict[int, str],
                      evidence: set[int]) -> list[tuple[int, float]]:
    """The first page with at least LANGUAGE_FLOOR pages of each language, where pages flagged for
    what the query is about (``evidence``) score nearly as well as its last one: the best of them
    take the places of the lowest-scored pages of a language that has more than its floor there.

    Why: most evidence is Chinese, and an English query's nearest pages are English ones, even
    when Chinese pages flagged for the same thing score just below them; the reverse holds for
    vendors' English pages. An analyst should see both on the first page."""
    top, rest = list(ranked[:FIRST_PAGE]), list(ranked[FIRST_PAGE:])
    if len(top) < FIRST_PAGE:
        return ranked
    floor = BALANCE_SCORE_RATIO * top[-1][1]
    for language in BALANCED_LANGUAGES:
        short = LANGUAGE_FLOOR - sum(lang.get(doc_id) == language for doc_id, _ in top)
        raised = [item for item in rest if lang.get(item[0]) == language and item[0] in evidence
                  and item[1] >= floor][:max(0, short)]
        for item in raised:
            counts = {other: sum(lang.get(d) == other for d, _ in top) for other in BALANCED_LANGUAGES}
            spare = [entry for entry in reversed(top) if lang.get(entry[0]) != language
                     and counts.get(lang.get(entry[0], ""), FIRST_PAGE) > LANGUAGE_FLOOR]
            if not spare:
                break
            top.remove(spare[0])
            rest.remove(item)
            top.append(item)
            rest.insert(0, spare[0])
    by_score = lambda item: (-item[1], item[0])  # noqa: E731
    return sorted(top, key=by_score) + sorted(rest, key=by_score)
