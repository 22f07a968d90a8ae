"""Score documents against the pattern library, sentence by sentence.

Why sentences: the decisive evidence is often one line item in a long table; a whole-page
vector dilutes it. Why counter-examples: a near miss (domestic cloud, mainland-operated
Azure, on-premises manual) uses the same words as the evidence, so a sentence counts only
as far as it is closer to the pattern's examples than to its counter-examples. Why kinds:
news and commentary describe the patterns in the same vocabulary but are not evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from extract.kind import EVIDENCE_KINDS
from index.chunking import detection_joins, join_text
from index.embed import Embedder
from index.entities import EntityHit, Watchlist, fold, written_in_traditional
from index.patterns import Pattern, PatternLibrary

DEFAULT_THRESHOLD = 0.62
KEYWORD_BONUS = 0.12          # a sentence naming the pattern's cues is stronger evidence
DOC_KEYWORD_BONUS = 0.08      # the rest of the page corroborating the decisive sentence
COUNTER_PENALTY = 1.0         # how much being nearer a counter-example costs
CUE_BONUS = 0.15             # a unit naming every cue type of the pattern (index.patterns.Pattern.cues)
UNCUED_PENALTY = 0.06         # a unit naming none of the pattern's cue types (names_no_cue)
NEGATION_PENALTY = 0.15       # an exclusion clause ("不接受NVIDIA", "must not use overseas regions")
# Exclusion cues: a requirement that rules something out reads like evidence to an embedding.
NEGATION_CUES = ("不接受", "不得", "禁止", "严禁", "不允许", "不能使用", "不可使用", "不采用", "不含",
                 "must not", "shall not", "will not be accepted", "not be accepted", "not permitted",
                 "prohibited", "excluding", "no overseas", "may not", "do not provide", "does not provide",
                 "not available to", "do not serve", "does not serve", "不向", "不面向", "do not offer",
                 "does not offer", "not offered", "not available in", "unavailable in", "暂不采购")
_CLAUSE_END = re.compile(r"[，,；;。！？!?]")
VETO_SIMILARITY = 0.9         # a unit this close to a dismissed one is the same evidence again
_BLAS = ThreadpoolController()   # found once: scanning the loaded libraries per call costs more than a page
EVIDENCE_UNITS = 20           # units kept per alert, so a verdict covers all of a page's evidence


@dataclass
class PatternVectors:
    pattern: Pattern
    examples: np.ndarray
    counters: np.ndarray
    keywords: list[str]
    example_texts: list[str]
    vetoes: np.ndarray        # units analysts dismissed for this pattern
    cue_types: frozenset[str] = field(init=False)   # every type in the pattern's cue groups

    def __post_init__(self) -> None:
        self.cue_types = frozenset(kind for group in self.pattern.cues for kind in group)


@dataclass
class PatternScore:
    pattern_id: str
    score: float
    flagged: bool
    sentence: str
    nearest_example: str
    reasons: dict = field(default_factory=dict)


@dataclass
class LearnedExamples:
    """Analysts' verdicts turned into text: confirmed sentences join a pattern's examples,
    dismissed ones its counter-examples, so a later page like a dismissed one loses."""

    examples: dict[str, list[str]] = field(default_factory=dict)
    counter_examples: dict[str, list[str]] = field(default_factory=dict)


class Detector:
    """Example vectors are computed once per library and model, then reused for every page."""

    def __init__(self, library: PatternLibrary, embedder: Embedder,
                 thresholds: dict[str, float] | None = None, learned: LearnedExamples | None = None,
                 watchlist: Watchlist | None = None) -> None:
        self.library = library
        self.embedder = embedder
        self.watchlist = watchlist   # names the entity types in each unit, for patterns' cues
        self.thresholds = thresholds or {}
        self.learned = learned or LearnedExamples()
        self.vectors = [self._vectors_for(pattern) for pattern in library.patterns]

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return self.embedder.encode(texts)

    def _vectors_for(self, pattern: Pattern) -> PatternVectors:
        examples = pattern.examples + self.learned.examples.get(pattern.id, [])
        counters = pattern.counter_examples + self.learned.counter_examples.get(pattern.id, [])
        vetoes = self._encode(self.learned.counter_examples.get(pattern.id, []))
        return PatternVectors(pattern, self._encode(examples), self._encode(counters),
                              [fold(k) for k in pattern.keywords], examples, vetoes)

    def threshold_for(self, pattern: Pattern) -> float:
        """Calibrated threshold if there is one for this library and model, else the file's, else the default."""
        if pattern.id in self.thresholds:
            return self.thresholds[pattern.id]
        return pattern.threshold or DEFAULT_THRESHOLD

    def units(self, chunks: list[str]) -> tuple[list[str], np.ndarray]:
        return embed_units(self.embedder, chunks)

    def score(self, sentences: Sequence[str], vectors: np.ndarray, kind: str,
              entities: Sequence[EntityHit], lang: str = "und") -> list[PatternScore]:
        """One score per pattern for a document given the vectors of its units.

        Units are sentences and the passages built from them (index.chunking.detection_joins);
        the best-scoring unit decides and is reported as the reason.

        The document's language is a pseudo entity type (``lang:zh``) so that a pattern can
        require a PRC tie that a Chinese-language page has without naming it.
        """
        folded = [fold(sentence) for sentence in sentences]
        units = Units(sentences, folded, self._unit_types(folded), self._types_in)
        entity_types = self._page_types(entities, units, language_tag(lang, sentences))
        # One BLAS thread: these products are a few hundred rows, and a second thread on a busy
        # 2-core machine made scoring four times slower (22 against 96-125 ms per page, measured).
        with _BLAS.limit(limits=1, user_api="blas"):
            return [self._score_one(pv, units, vectors, kind, entity_types) for pv in self.vectors]

    def _page_types(self, entities: Sequence[EntityHit], units: Units, tag: str) -> set[str]:
        """The entity types the page names for ``requires``, less those it names only to rule out
        (a PRC tie or a sanctioned vendor inside an exclusion) and, on a page that is not in
        Simplified Chinese and names no PRC tie, those named only by generic words."""
        types = {hit.type for hit in entities} | {f"lang:{tag}"}
        if self.watchlist is None:
            return types
        if "prc-tie" in types and not names_tie_outside_exclusions(units):
            types.discard("prc-tie")
        if "sanctioned-vendor" in types and not any(
                named_not_excluded(text, self.watchlist.mentions(text, "sanctioned-vendor"))
                for text, unit_types in zip(units.folded, units.types, strict=True)
                if "sanctioned-vendor" in unit_types):
            types.discard("sanctioned-vendor")
        if tag != "zh" and "prc-tie" not in types:
            types -= only_generic_types(entities)
        return types

    def _types_in(self, text: str) -> set[str]:
        return self.watchlist.types_in(text) if self.watchlist is not None else set()

    def _unit_types(self, folded: Sequence[str]) -> list[set[str]]:
        """Each unit's entity types: for the patterns' cues, and for where a PRC tie is named."""
        if self.watchlist is None:
            return [set() for _ in folded]
        return [self.watchlist.types_in(text) for text in folded]

    def _score_one(self, pv: PatternVectors, units: Units, vectors: np.ndarray, kind: str,
                   entity_types: set[str]) -> PatternScore:
        sentences, folded = units.texts, units.folded
        if len(sentences) == 0:
            return PatternScore(pv.pattern.id, 0.0, False, "", "", {"why": "no text"})
        sentence_scores, nearest, keyword_hits = sentence_evidence(pv, units, vectors)
        best = int(np.argmax(sentence_scores))
        doc_keywords = sorted({k for k in pv.keywords if any(k in text for text in folded)})
        doc_bonus = DOC_KEYWORD_BONUS * min(len(doc_keywords), 4) / 4
        score = float(sentence_scores[best]) + doc_bonus
        threshold = self.threshold_for(pv.pattern)
        ranked = np.argsort(-sentence_scores)[:EVIDENCE_UNITS]
        strong = [i for i in ranked if sentence_scores[i] + doc_bonus >= threshold]
        reasons = {
            "evidence": [sentences[i] for i in strong] or [sentences[best]],
            "sentence_similarity": round(float(sentence_scores[best]), 4),
            "keywords": doc_keywords[:12],
            "sentence_keywords": keyword_hits[best],
            "sentence_entity_types": sorted(units.types[best]),
            "kind": kind,
            "threshold": round(threshold, 4),
        }
        flagged = score >= threshold
        blocker = gate(pv.pattern, kind, entity_types)
        if blocker:
            reasons["suppressed"] = blocker
            flagged = False
        return PatternScore(pv.pattern.id, round(score, 4), flagged, sentences[best],
                            pv.example_texts[nearest[best]], reasons)


def embed_units(embedder: Embedder, chunks: list[str]) -> tuple[list[str], np.ndarray]:
    """Chunks plus the passages joining them, with vectors; the chunks' vectors come first.

    A free function so that worker processes (loophole.workers) can embed without a Detector.
    """
    joins = detection_joins(chunks)
    chunk_vectors, join_vectors = embedder.encode_with_joins(chunks, joins)
    passages = [join_text(chunks, join) for join in joins]
    return chunks + passages, np.vstack([chunk_vectors, join_vectors])


@dataclass
class Units:
    """A document's scoring units: as written, folded, and the entity types each one names."""

    texts: Sequence[str]
    folded: Sequence[str]
    types: Sequence[set[str]]
    types_in: Callable[[str], set[str]] = field(default=lambda text: set())


def names_tie_outside_exclusions(units: Units) -> bool:
    """Whether some unit names a PRC tie without an exclusion: "services are not available to
    customers in China" is a US GPU cloud's compliance line, not a tie to the PRC."""
    return any("prc-tie" in types and not has_exclusion(text)
               for text, types in zip(units.folded, units.types, strict=True))


# Words that name a vendor in order to rule it out: "no Hikvision, Dahua or Huawei devices certified",
# "unlike cameras from Hikvision", "不兼容海康". Looked for just before the name, in the same sentence.
EXCLUDING_WORDS = ("no ", "not ", "unlike", "instead of", "rather than", "never", "without", "excluding",
                   "except", "non-", "ndaa", "banned", "prohibited", "free of", "不含", "不得", "不接受", "禁止",
                   "严禁", "不允许", "不采用", "不使用", "不兼容", "不支持", "取代", "替代", "替换")
EXCLUSION_REACH = 40          # characters before a name in which an excluding word governs it
_SENTENCE_END = re.compile(r"[；;。！？!?\n]")


def named_not_excluded(text: str, starts: Sequence[int]) -> bool:
    """Whether some name starting at ``starts`` in the text is not one named to be ruled out (a US
    video platform listing the vendors it does not certify names them, but is not their platform)."""
    for start in starts:
        window = text[max(0, start - EXCLUSION_REACH):start]
        sentence = _SENTENCE_END.split(window)[-1]
        if not any(word in sentence for word in EXCLUDING_WORDS):
            return True
    return False


def only_generic_types(entities: Sequence[EntityHit]) -> set[str]:
    """Types named only by generic words ("police", 市政府, "university"). A Taiwan city government or a
    US police department is such a buyer too; on a page that is neither in Simplified Chinese nor
    names a PRC tie, these words say nothing about the PRC."""
    return {hit.type for hit in entities if hit.generic} - {hit.type for hit in entities if not hit.generic}


def language_tag(lang: str, sentences: Sequence[str]) -> str:
    """The language as a pseudo entity type. Chinese in Traditional characters is ``zh-hant``, not
    ``zh``: a page from Taiwan is no PRC tie by its script, and one from Hong Kong about mainland
    customers says so ("內地", folded to 内地, is a ``prc-tie`` name)."""
    if lang == "zh" and written_in_traditional("".join(sentences)):
        return "zh-hant"
    return lang


def names_cues(cues: list[list[str]], types: set[str]) -> bool:
    """Whether a unit names one type of every cue group (a pattern without cues: never)."""
    return bool(cues) and all(types.intersection(group) for group in cues)


def names_no_cue(cues: list[list[str]], types: set[str]) -> bool:
    """Whether a unit names none of the entity types the pattern's evidence is about: a line about
    cameras and cloud archives in general, with no vendor or cloud named, reads like a vendor's
    cloud offer to an embedding but cannot show it."""
    return bool(cues) and not any(types.intersection(group) for group in cues)


def sentence_evidence(pv: PatternVectors, units: Units,
                      vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Per-unit score, index of the nearest example, and keywords named in the unit."""
    folded = units.folded
    positive = vectors @ pv.examples.T
    best_positive = positive.max(axis=1)
    nearest = positive.argmax(axis=1)
    if len(pv.counters):
        best_negative = (vectors @ pv.counters.T).max(axis=1)
        penalty = COUNTER_PENALTY * np.maximum(0.0, best_negative - best_positive)
    else:
        penalty = np.zeros_like(best_positive)
    keyword_hits = [[k for k in pv.keywords if k in text] for text in folded]
    negated = np.array([excludes_pattern_terms(pv, text, units.types_in) or about_mainland_cloud(pv, types)
                        for text, types in zip(folded, units.types, strict=True)], dtype=bool)
    bonus = np.array([KEYWORD_BONUS * min(len(hits), 2) / 2 + CUE_BONUS * names_cues(pv.pattern.cues, types)
                      for hits, types in zip(keyword_hits, units.types, strict=True)], dtype=np.float32)
    bonus -= np.array([UNCUED_PENALTY * names_no_cue(pv.pattern.cues, types) for types in units.types],
                      dtype=np.float32)
    bonus = np.where(negated, -NEGATION_PENALTY, bonus)
    scores = best_positive + bonus - penalty
    if len(pv.vetoes):
        scores[(vectors @ pv.vetoes.T).max(axis=1) >= VETO_SIMILARITY] = 0.0
    return scores, nearest, keyword_hits


US_CLOUD_TYPES = frozenset({"us-cloud", "us-ai-service", "us-ai-model"})


def about_mainland_cloud(pv: PatternVectors, types: set[str]) -> bool:
    """Whether a unit speaks of a US cloud as run inside the PRC by a licensed local operator (世纪互联,
    西云数据, the AWS China regions): patterns.md sets that apart from the US cloud itself, so for
    a pattern about US clouds the unit counts like an exclusion, not as evidence."""
    return "mainland-operator" in types and bool(pv.cue_types & US_CLOUD_TYPES)


def has_exclusion(text: str) -> bool:
    return any(cue in text for cue in NEGATION_CUES)


def excludes_pattern_terms(pv: PatternVectors, text: str, types_in: Callable[[str], set[str]]) -> bool:
    """Whether an exclusion clause in the unit rules out what the pattern is about: the clause with
    the cue names one of the pattern's keywords or cue entity types ("不接受NVIDIA", "must not use
    overseas regions"). An exclusion about something else in the same line item ("采购人名称不得
    出现在账号资料中", a reseller's hiding of the buyer) leaves the rest of the line as evidence."""
    if not has_exclusion(text):
        return False
    for clause in _CLAUSE_END.split(text):
        if has_exclusion(clause) and (
                any(keyword in clause for keyword in pv.keywords) or pv.cue_types & types_in(clause)):
            return True
    return False


def gate(pattern: Pattern, kind: str, entity_types: set[str]) -> str | None:
    """Why the pattern may not fire on this document at all, or None."""
    if kind not in EVIDENCE_KINDS:
        return f"not a primary source (kind: {kind})"
    if pattern.kinds and kind not in pattern.kinds:
        return f"pattern applies to {', '.join(pattern.kinds)}, not {kind}"
    for condition in pattern.requires:
        if not entity_types.intersection(condition):
            return "no mention of any of: " + ", ".join(condition)
    return None
