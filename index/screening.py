"""Screening a party's name against the loaded restriction lists, in Chinese or English.

Four methods, each giving a score in [0, 1], and a strength: ``listed`` (shown as a fact) or
``possible`` (shown as a lead for a person to check, never as a fact):

* ``exact`` / ``alias``: the name, folded and without its legal form, is the listed name or
  one of its alternate or Chinese (alias-file) names. Always ``listed``.
* ``fuzzy``: same script, rapidfuzz's token-sort ratio; ``listed`` only when every distinctive
  word (not a legal form, not a word many names share: "Technology", "Beijing") agrees both
  ways, so "Beijing Yunzhi Technology" is not "Beijing Yunze Technology".
* ``transliteration``: a Chinese name against English listed names. Its proper part is read
  as pinyin (pypinyin) at syllable boundaries and its common words through a glossary
  (index.names): 北京云泽科技 covers Beijing, Yunze, Technology. ``listed`` only when the
  listed name's distinctive words and the Chinese name's proper part cover each other.
* ``embedding``: the multilingual sentence model's cosine between the Chinese name and the
  English names. Names are short and share most words, so this is noisy (北京云智科技 is
  nearer "Beijing Yunze Technology" than 北京云泽科技 is): it only ever gives ``possible``.

Thresholds are settings (ground.config.ScreeningSettings), fitted on the labelled names in
tests/fixtures/listed_parties (see the README).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from rapidfuzz import fuzz, process

from index.lists import ListedEntry
from index.names import GENERIC, HanName, LatinName, han_name, is_han, latin_name, syllable_spans

LISTED, POSSIBLE = "listed", "possible"
_STRENGTH_RANK = {LISTED: 1, POSSIBLE: 0}


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class Thresholds(Protocol):
    fuzzy_listed: float
    fuzzy_possible: float
    transliteration_listed: float
    transliteration_possible: float
    embedding_possible: float
    max_matches: int


@dataclass(frozen=True)
class Match:
    """One listed entry a name matched, how, and how strongly."""

    list: str
    list_name: str
    entry_key: str
    entry_name: str
    matched_name: str
    method: str
    score: float
    strength: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": round(self.score, 4)}

    @property
    def rank(self) -> tuple[int, float]:
        return _STRENGTH_RANK[self.strength], self.score


@dataclass(frozen=True)
class _Name:
    entry: int
    text: str
    method: str          # exact (the listed name) or alias


def _token_agrees(token: str, others: Iterable[str]) -> bool:
    """Exact for short words; one slip allowed in longer ones (Dynasence, Dynasense)."""
    return any(token == other or (len(token) >= 6 and fuzz.ratio(token, other) >= 85) for other in others)


def distinctive_agree(a: LatinName, b: LatinName) -> bool:
    """Every distinctive word of each name has its counterpart in the other."""
    return all(_token_agrees(t, b.tokens) for t in a.distinctive) and \
        all(_token_agrees(t, a.tokens) for t in b.distinctive)


def _cover(name: HanName, listed: LatinName) -> tuple[float, float, float]:
    """(share of the listed name's distinctive words the Chinese name covers, share of the Chinese
    name's proper characters covered, share of its glossed words the listed name has)."""
    spans = syllable_spans(name)
    english = name.english
    wanted = listed.distinctive or tuple(t for t in listed.tokens if t not in GENERIC) or listed.tokens
    covered = [t for t in wanted if t in spans or t in english]
    cover_listed = len(covered) / len(wanted) if wanted else 0.0
    tokens = set(listed.tokens)
    proper_total = sum(len(chars) for chars, _ in name.proper) + len(name.latin)
    proper_hit = sum(len(chars) for chars, syllables in name.proper if _spelled_in(syllables, tokens))
    proper_hit += sum(1 for t in name.latin if t in tokens)
    cover_proper = proper_hit / proper_total if proper_total else 1.0
    glossed = [words for _, words in name.glossed]
    agree = sum(1 for words in glossed if tokens & set(words)) / len(glossed) if glossed else 1.0
    return cover_listed, cover_proper, agree


def _spelled_in(syllables: tuple[str, ...], tokens: set[str]) -> bool:
    """Whether the syllables, split at syllable boundaries, are each a word of the listed name:
    天仪 -> tianyi; 北京云泽 -> beijing + yunze."""
    if not syllables:
        return True
    for cut in range(len(syllables), 0, -1):
        if "".join(syllables[:cut]) in tokens and _spelled_in(syllables[cut:], tokens):
            return True
    return False


class Screener:
    """The loaded entries, indexed for each method; ``encoder`` is the project's embedder (or
    None: no embedding method, e.g. where the model is not wanted)."""

    def __init__(self, entries: list[ListedEntry], encoder: Encoder | None, thresholds: Thresholds,
                 version: int | None = None) -> None:
        self.entries = entries
        self.version = version
        self.thresholds = thresholds
        self._encoder = encoder
        self._exact: dict[str, list[_Name]] = defaultdict(list)
        self._latin: list[_Name] = []
        self._han: list[_Name] = []
        for index, entry in enumerate(entries):
            for text, method in [(entry.name, "exact")] + [(n, "alias") for n in entry.alt_names + entry.chinese_names]:
                self._add(_Name(index, text, method))
        self._latin_normals = [latin_name(n.text).normal for n in self._latin]
        self._han_normals = [han_name(n.text).normal for n in self._han]
        self._postings: dict[str, set[int]] = defaultdict(set)
        for i, record in enumerate(self._latin):
            for token in latin_name(record.text).tokens:
                self._postings[token].add(i)
        self._vectors: np.ndarray | None = None

    def _add(self, record: _Name) -> None:
        key = han_name(record.text).normal if is_han(record.text) else latin_name(record.text).normal
        if not key:
            return
        self._exact[key].append(record)
        (self._han if is_han(record.text) else self._latin).append(record)

    def __len__(self) -> int:
        return len(self.entries)

    def _match(self, record: _Name, method: str, score: float, strength: str) -> Match:
        entry = self.entries[record.entry]
        return Match(entry.list_code, entry.list_name, entry.key, entry.name, record.text, method,
                     float(score), strength)

    # --- methods ---------------------------------------------------------------------------

    def _exact_matches(self, name: str) -> list[Match]:
        key = han_name(name).normal if is_han(name) else latin_name(name).normal
        return [self._match(r, r.method, 1.0, LISTED) for r in self._exact.get(key, [])]

    def _fuzzy_latin(self, name: str) -> list[Match]:
        query = latin_name(name)
        cutoff = self.thresholds.fuzzy_possible * 100
        found = process.extract(query.normal, self._latin_normals, scorer=fuzz.token_sort_ratio,
                                limit=self.thresholds.max_matches * 2, score_cutoff=cutoff)
        matches = []
        for _, score, i in found:
            record = self._latin[i]
            agree = distinctive_agree(query, latin_name(record.text))
            strong = score / 100 >= self.thresholds.fuzzy_listed and agree
            matches.append(self._match(record, "fuzzy", score / 100, LISTED if strong else POSSIBLE))
        return matches

    def _fuzzy_han(self, name: str) -> list[Match]:
        query = han_name(name)
        found = process.extract(query.normal, self._han_normals, scorer=fuzz.ratio,
                                limit=self.thresholds.max_matches, score_cutoff=self.thresholds.fuzzy_possible * 100)
        matches = []
        for _, score, i in found:
            record = self._han[i]
            same_proper = han_name(record.text).proper_chars == query.proper_chars
            strong = score / 100 >= self.thresholds.fuzzy_listed and same_proper
            matches.append(self._match(record, "fuzzy", score / 100, LISTED if strong else POSSIBLE))
        return matches

    def _candidates(self, query: HanName) -> set[int]:
        """Latin names sharing a distinctive word with the Chinese name's pinyin or glossary words."""
        found: set[int] = set()
        for span in syllable_spans(query) | query.english:
            if span not in GENERIC:
                found |= self._postings.get(span, set())
        if not query.proper and not query.latin:  # a wholly translated name: candidates share every word
            english = query.english
            counts: dict[int, int] = defaultdict(int)
            for word in english:
                for i in self._postings.get(word, ()):
                    counts[i] += 1
            found |= {i for i, c in counts.items() if c >= len(latin_name(self._latin[i].text).tokens) >= 2}
        return found

    def _transliterated(self, name: str) -> list[Match]:
        query = han_name(name)
        matches = []
        for i in self._candidates(query):
            record = self._latin[i]
            cover_listed, cover_proper, agree = _cover(query, latin_name(record.text))
            score = 0.5 * cover_listed + 0.3 * cover_proper + 0.2 * agree
            if score < self.thresholds.transliteration_possible:
                continue
            strong = cover_listed == 1.0 and cover_proper == 1.0 and score >= self.thresholds.transliteration_listed
            matches.append(self._match(record, "transliteration", score, LISTED if strong else POSSIBLE))
        return matches

    def _latin_vectors(self) -> np.ndarray:
        if self._vectors is None:
            assert self._encoder is not None
            self._vectors = self._encoder.encode([r.text for r in self._latin])
        return self._vectors

    def _embedded(self, names: list[str]) -> dict[str, list[Match]]:
        """Each Chinese name's nearest English listed names by cosine, as ``possible`` leads."""
        if self._encoder is None or not names or not self._latin:
            return {}
        similarity = self._encoder.encode(names) @ self._latin_vectors().T
        found: dict[str, list[Match]] = {}
        for name, row in zip(names, similarity, strict=True):
            best = np.argsort(-row)[:self.thresholds.max_matches]
            found[name] = [self._match(self._latin[i], "embedding", float(row[i]), POSSIBLE)
                           for i in best if row[i] >= self.thresholds.embedding_possible]
        return found

    # --- API -------------------------------------------------------------------------------

    def screen(self, name: str) -> list[Match]:
        return self.screen_many([name]).get(name.strip(), [])

    def screen_many(self, names: Iterable[str]) -> dict[str, list[Match]]:
        """Matches for each distinct name, best first: one entry once, by its best match."""
        return {name: self._best(found) for name, found in self.every_match(names).items()}

    def every_match(self, names: Iterable[str]) -> dict[str, list[Match]]:
        """Every method's matches for each distinct name, unranked (for measuring the methods)."""
        distinct = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
        if not self.entries:
            return {name: [] for name in distinct}
        embedded = self._embedded([n for n in distinct if is_han(n)])
        return {name: self._all_methods(name) + embedded.get(name, []) for name in distinct}

    def _all_methods(self, name: str) -> list[Match]:
        matches = self._exact_matches(name)
        if is_han(name):
            return matches + self._fuzzy_han(name) + self._transliterated(name)
        return matches + self._fuzzy_latin(name)

    def _best(self, matches: list[Match]) -> list[Match]:
        best: dict[str, Match] = {}
        for match in matches:
            known = best.get(match.entry_key)
            if known is None or match.rank > known.rank:
                best[match.entry_key] = match
        ranked = sorted(best.values(), key=lambda m: (m.rank, m.entry_name), reverse=True)
        return ranked[:self.thresholds.max_matches]
