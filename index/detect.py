"""Score documents against the pattern library: evidence features per pattern, one learned decision.

Why sentences: the decisive evidence is often one line item in a long table; a whole-page
vector dilutes it. Why counter-examples: a near miss (domestic cloud, mainland-operated Azure,
on-premises manual) uses the same words as the evidence, so a unit counts only as far as it is
closer to the pattern's examples than to its counter-examples. Why genre is a feature, not a
gate: real sellers write tutorials, forum posts and FAQs, and a hard "news, so never evidence"
guess silenced them; reporting cues now weigh against an alert as much as labelled pages say.
The decision (index.decision) turns the features into a calibrated probability.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from index.chunking import detection_joins, join_text
from index.decision import DecisionModel
from index.embed import Embedder
from index.entities import EntityHit, Watchlist, fold, written_in_traditional
from index.evidence import (
    REAL_TEXT,
    Decisive,
    PageGenre,
    PatternProfile,
    UnitScores,
    build_profile,
    logit_feature,
    page_features,
    with_rivalry,
)
from index.patterns import Pattern, PatternLibrary
from index.textmodel import NEW_PATTERN_EVIDENCE, REPORTING, ExampleTextModel, example_text_model, real_target

log = logging.getLogger(__name__)

# Exclusion cues: a requirement that rules something out reads like evidence to an embedding.
NEGATION_CUES = ("不接受", "不得", "禁止", "严禁", "不允许", "不能使用", "不可使用", "不采用", "不含",
                 "must not", "shall not", "will not be accepted", "not be accepted", "not permitted",
                 "prohibited", "excluding", "no overseas", "may not", "do not provide", "does not provide",
                 "not available to", "do not serve", "does not serve", "不向", "不面向", "do not offer",
                 "does not offer", "not offered", "not available in", "unavailable in", "暂不采购",
                 # a seller ruling out what it will not sell ("本店不销售A100", "we do not sell H100 systems")
                 "不销售", "不出售", "不售卖", "do not sell", "does not sell", "not for sale")
# A clause ends at punctuation and at the title join ("TITLE | sentence", index.chunking): a body line's
# "本项目不接受联合体投标" does not govern the terms in the title above it.
_CLAUSE_END = re.compile(r"[，,；;。！？!?|]")
# A negation that governs who may be named ("不得向原厂披露最终用户", "采购人名称不得出现在账号资料中", "their
# name must not appear anywhere") hides the buyer: the patterns count that as part of the evidence, not against it.
_DISCLOSURE = re.compile(r"披露|透露|泄露|出现|体现|显示|报备|申报|告知|暴露|disclos|reveal|appear")
_IDENTITY = re.compile(r"采购人|采购单位|最终用户|使用方|使用单位|需求单位|名称|身份|end.?user|end client|identity|name"
                       r"|buyer|principal|customer")
VETO_SIMILARITY = 0.9         # a unit this close to a dismissed one is the same evidence again
_BLAS = ThreadpoolController()   # found once: scanning the loaded libraries per call costs more than a page
EVIDENCE_UNITS = 20           # units kept per alert, so a verdict covers all of a page's evidence
PRC = "prc"                   # pseudo entity type: the text is in Simplified Chinese or names a PRC tie
US_CLOUD_TYPES = frozenset({"us-cloud", "us-ai-service", "us-ai-model"})


@dataclass
class PatternVectors:
    pattern: Pattern
    examples: np.ndarray
    counters: np.ndarray
    keywords: list[str]
    example_texts: list[str]
    vetoes: np.ndarray        # units analysts dismissed for this pattern
    profile: PatternProfile
    text_model: ExampleTextModel | None = None


@dataclass
class PatternScore:
    pattern_id: str
    score: float              # the decision model's probability that the page is evidence
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


@dataclass(frozen=True)
class PageFacts:
    """What the page says about itself, apart from its units: every pattern reads the same."""

    kind: str
    lang: str
    entities: Sequence[EntityHit]
    genre: PageGenre
    text_scores: dict[str, float] = field(default_factory=dict)   # index.textmodel logits by pattern
    opening: str = ""                 # the page's title and opening text (index.textmodel.opening)


@dataclass
class Units:
    """A document's scoring units: as written, folded, and the entity types each one names."""

    texts: Sequence[str]
    folded: Sequence[str]
    types: Sequence[set[str]]
    types_in: Callable[[str], set[str]] = field(default=lambda text: set())


@lru_cache(maxsize=256)
def _reference_vectors(embedder: Embedder, texts: tuple[str, ...]) -> np.ndarray:
    """The background sentences and a pattern's examples, embedded once per process and list.

    A detector is built for every labelled folder scored (eval, calibrate, the quality gate), and
    re-embedding the same sentences took 13% of scoring forty pages (measured). Keyed on the whole
    list, not each sentence: a batch's vectors differ from one-at-a-time ones in the seventh decimal,
    and a cache must not change a score. Read-only, since every detector shares the array."""
    vectors = embedder.encode(list(texts))
    vectors.flags.writeable = False
    return vectors


class Detector:
    """Example vectors and profiles are computed once per library and model, then reused."""

    def __init__(self, library: PatternLibrary, embedder: Embedder, decision: DecisionModel,
                 learned: LearnedExamples | None = None, watchlist: Watchlist | None = None,
                 background: Sequence[str] = ()) -> None:
        self.library = library
        self.embedder = embedder
        self.watchlist = watchlist   # names the entity types in each unit
        self.decision = decision
        self.learned = learned or LearnedExamples()
        self._background_texts = list(background)
        self._background = self._encode(self._background_texts)
        self.vectors = [self._vectors_for(pattern) for pattern in library.patterns]

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return _reference_vectors(self.embedder, tuple(texts))

    def _vectors_for(self, pattern: Pattern) -> PatternVectors:
        examples = pattern.examples + self.learned.examples.get(pattern.id, [])
        counters = pattern.counter_examples + self.learned.counter_examples.get(pattern.id, [])
        vetoes = self._encode(self.learned.counter_examples.get(pattern.id, []))
        example_vectors = self._encode(examples)
        counter_vectors = self._encode(counters)
        # The profile is the author's, not the verdicts': it must not move with each dismissal.
        own_examples = example_vectors[:len(pattern.examples)]
        own_counters = counter_vectors[:len(pattern.counter_examples)]
        profile = build_profile(own_examples, own_counters, self._background,
                                [self._example_types(text) for text in pattern.examples],
                                [self._example_types(text) for text in pattern.counter_examples])
        others = [e for p in self.library.patterns if p.id != pattern.id for e in p.examples]
        text_model = example_text_model(pattern.examples, pattern.counter_examples, self._background_texts, others)
        if text_model is not None and not text_model.separates:
            log.warning("pattern %s: with each of its %d examples held out in turn, they score no higher than its "
                        "counter-examples, so its own text model tells only the subject apart; more examples, "
                        "in the different words evidence is written in, would let it tell evidence from near misses",
                        pattern.id, len(pattern.examples))
        return PatternVectors(pattern, example_vectors, counter_vectors,
                              [fold(k) for k in pattern.keywords], examples, vetoes, profile, text_model)

    def _example_types(self, text: str) -> frozenset[str]:
        folded = fold(text)
        types = self._types_in(folded)
        if "prc-tie" in types or (not text.isascii() and not written_in_traditional(text, sample=len(text))
                                  and _mostly_han(text)):
            types.add(PRC)
        return frozenset(types - {"prc-tie"})

    def cut_for(self, pattern: Pattern) -> float:
        """The probability above which the pattern alerts: the pattern file's, else the model's."""
        return pattern.threshold if pattern.threshold is not None else self.decision.cut_for(pattern.id)

    def units(self, chunks: list[str]) -> tuple[list[str], np.ndarray]:
        return embed_units(self.embedder, chunks)

    def score(self, sentences: Sequence[str], vectors: np.ndarray, facts: PageFacts) -> list[PatternScore]:
        """One score per pattern for a document given the vectors of its units.

        Units are sentences and the passages built from them (index.chunking.detection_joins).
        """
        folded = [fold(sentence) for sentence in sentences]
        units = Units(sentences, folded, self._unit_types(folded), self._types_in)
        page_types = self._page_types(facts.entities, units, language_tag(facts.lang, sentences))
        tie = {PRC} if PRC in page_types else set()
        units = Units(sentences, folded, [(types - {"prc-tie"}) | tie for types in units.types], self._types_in)
        # One BLAS thread: these products are a few hundred rows, and a second thread on a busy
        # 2-core machine made scoring four times slower (22 against 96-125 ms per page, measured).
        if not units.texts:
            return [PatternScore(pv.pattern.id, 0.0, False, "", "", {"why": "no text"}) for pv in self.vectors]
        with _BLAS.limit(limits=1, user_api="blas"):
            measured = [self._measure(pv, units, vectors, facts, page_types) for pv in self.vectors]
        decisives = with_rivalry([decisive for _, decisive in measured])
        return [self._decide(pv, scores, decisive, units, facts, page_types)
                for pv, (scores, _), decisive in zip(self.vectors, measured, decisives, strict=True)]

    def _page_types(self, entities: Sequence[EntityHit], units: Units, tag: str) -> set[str]:
        """The entity types the page names, less those it names only to rule out (a PRC tie or a
        sanctioned vendor inside an exclusion) and, on a page that is not in Simplified Chinese
        and names no PRC tie, those named only by generic words. ``prc`` stands for a PRC tie
        named, or the page being in Simplified Chinese (``prc-tie`` stays for patterns that require it)."""
        types = {hit.type for hit in entities}
        if self.watchlist is not None:
            if "prc-tie" in types and not names_tie_outside_exclusions(units):
                types.discard("prc-tie")
            if "sanctioned-vendor" in types and not any(
                    named_not_excluded(text, self.watchlist.mentions(text, "sanctioned-vendor"))
                    for text, unit_types in zip(units.folded, units.types, strict=True)
                    if "sanctioned-vendor" in unit_types):
                types.discard("sanctioned-vendor")
            if tag != "zh" and "prc-tie" not in types:
                types -= only_generic_types(entities)
        if tag == "zh" or "prc-tie" in types:
            types.add(PRC)
        return types | {f"lang:{tag}"}

    def _types_in(self, text: str) -> set[str]:
        return self.watchlist.types_in(text) if self.watchlist is not None else set()

    def _unit_types(self, folded: Sequence[str]) -> list[set[str]]:
        return [self._types_in(text) for text in folded]

    def _measure(self, pv: PatternVectors, units: Units, vectors: np.ndarray, facts: PageFacts,
                 page_types: set[str]) -> tuple[UnitScores, Decisive]:
        scores = unit_scores(pv, units, vectors)
        text = facts.text_scores.get(pv.pattern.id, 0.0)
        named = sum(1 for keyword in pv.keywords if any(keyword in unit for unit in units.folded))
        own_text = pv.text_model.score(facts.opening) if pv.text_model is not None and facts.opening else 0.0
        reporting = facts.text_scores.get(REPORTING, 0.0)
        decisive = page_features(pv.profile, scores, units.types, page_types, facts.genre, named, text, own_text,
                                 reporting, facts.text_scores.get(NEW_PATTERN_EVIDENCE, 0.0))
        if pv.pattern.id in self.decision.stages:   # the stage's input (index.decision.Stage)
            decisive.features[REAL_TEXT] = logit_feature(facts.text_scores.get(real_target(pv.pattern.id), 0.0))
        return scores, decisive

    def _decide(self, pv: PatternVectors, scores: UnitScores, decisive: Decisive, units: Units, facts: PageFacts,
                page_types: set[str]) -> PatternScore:
        probability = self.decision.probability(pv.pattern.id, decisive.features)
        cut = self.cut_for(pv.pattern)
        reasons = self._reasons(pv, units, scores, decisive, facts, cut)
        flagged = probability >= cut
        blocker = gate(pv.pattern, facts.kind, page_types) or (
            "an analyst dismissed this evidence before" if scores.repeats_dismissed else None)
        if blocker:
            reasons["suppressed"] = blocker
            flagged = False
        return PatternScore(pv.pattern.id, round(probability, 4), flagged, units.texts[decisive.best],
                            pv.example_texts[int(scores.nearest[decisive.best])], reasons)

    def _reasons(self, pv: PatternVectors, units: Units, scores: UnitScores, decisive: Decisive,
                 facts: PageFacts, cut: float) -> dict:
        """Why the page scored as it did: the features, each one's share of the decision, the units
        that carried it (nearer the examples than the near misses) and the types the decisive one names."""
        best = decisive.best
        adjusted = scores.adjusted
        evidence = [units.texts[i] for i in decisive.ranked[:EVIDENCE_UNITS]
                    if i == best or pv.profile.over_counters(float(adjusted[i])) > 0]
        return {
            "evidence": evidence,
            "features": {k: round(v, 4) for k, v in decisive.features.items()},
            "contributions": self.decision.contributions(pv.pattern.id, decisive.features),
            "weights": "own" if pv.pattern.id in self.decision.patterns else "generic",
            "keywords": sorted({k for k in pv.keywords if any(k in text for text in units.folded)})[:12],
            "sentence_entity_types": sorted(units.types[best]),
            "kind": facts.kind,
            "threshold": round(cut, 4),
        }


def _mostly_han(text: str) -> bool:
    han = sum(1 for char in text if "\u4e00" <= char <= "\u9fff")
    return han >= 4 and han >= len([c for c in text if c.isalpha()]) / 3


def unit_scores(pv: PatternVectors, units: Units, vectors: np.ndarray) -> UnitScores:
    """Each unit's similarity to the nearest example and counter-example; units that rule out the
    pattern's own terms, speak of a mainland-operated US cloud, or repeat a dismissed unit do not count."""
    positive = vectors @ pv.examples.T
    negative = (vectors @ pv.counters.T).max(axis=1) if len(pv.counters) else np.zeros(len(vectors))
    usable = np.array([not (excludes_pattern_terms(pv, text, units.types_in) or about_mainland_cloud(pv, types))
                       for text, types in zip(units.folded, units.types, strict=True)], dtype=bool)
    vetoed = (vectors @ pv.vetoes.T).max(axis=1) >= VETO_SIMILARITY if len(pv.vetoes) else None
    if vetoed is not None:
        usable &= ~vetoed
    return UnitScores(positive.max(axis=1), negative, positive.argmax(axis=1), usable, vetoed)


def embed_units(embedder: Embedder, chunks: list[str]) -> tuple[list[str], np.ndarray]:
    """Chunks plus the passages joining them, with vectors; the chunks' vectors come first.

    A free function so that worker processes (loophole.workers) can embed without a Detector.
    """
    joins = detection_joins(chunks)
    chunk_vectors, join_vectors = embedder.encode_with_joins(chunks, joins)
    passages = [join_text(chunks, join) for join in joins]
    return chunks + passages, np.vstack([chunk_vectors, join_vectors])


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


def about_mainland_cloud(pv: PatternVectors, types: set[str]) -> bool:
    """Whether a unit speaks of a US cloud as run inside the PRC by a licensed local operator (世纪互联,
    西云数据, the AWS China regions): patterns.md sets that apart from the US cloud itself, so for
    a pattern whose examples are about US clouds the unit counts like an exclusion, not as evidence."""
    return "mainland-operator" in types and bool(pv.profile.named_types & US_CLOUD_TYPES)


def has_exclusion(text: str) -> bool:
    return any(cue in text for cue in NEGATION_CUES)


def excludes_pattern_terms(pv: PatternVectors, text: str, types_in: Callable[[str], set[str]]) -> bool:
    """Whether an exclusion clause in the unit rules out what the pattern is about: the clause with
    the cue names one of the pattern's keywords or the entity types its examples name ("不接受NVIDIA",
    "must not use overseas regions"). An exclusion about something else in the same line item
    ("本项目不接受联合体投标" under a title that names the service) leaves the rest as evidence, and so does a clause
    that hides the buyer ("最终用户不向AWS披露"), which is part of what the patterns describe."""
    if not has_exclusion(text):
        return False
    named = pv.profile.named_types - {PRC}
    for clause in _CLAUSE_END.split(text):
        if has_exclusion(clause) and not conceals_buyer(clause) and (
                any(keyword in clause for keyword in pv.keywords) or named & types_in(clause)):
            return True
    return False


def conceals_buyer(clause: str) -> bool:
    """Whether the clause's negation is about disclosing who buys, not about what is bought."""
    return bool(_DISCLOSURE.search(clause) and _IDENTITY.search(clause))


def gate(pattern: Pattern, kind: str, entity_types: set[str]) -> str | None:
    """Why the pattern may not fire on this document at all, or None: only the hard conditions a
    pattern's author wrote (``kinds``, ``requires``); the shipped library has none."""
    if pattern.kinds and kind not in pattern.kinds:
        return f"pattern applies to {', '.join(pattern.kinds)}, not {kind}"
    for condition in pattern.requires:
        if not entity_types.intersection(condition):
            return "no mention of any of: " + ", ".join(condition)
    return None
