"""What a query asks for on the keyword side: its own words, and the same things in the other language.

Why: BM25 matches words, and an analyst's English query ("police bureau buys servers with
Nvidia GPUs") shares no word with the Chinese notice that answers it (公安局 … 英伟达 … 服务器).
Each name or word of the query found in the watchlist (its aliases: 英伟达 for NVIDIA, 微软云
for Azure) or in the bilingual search vocabulary (seeds/search_vocabulary.yaml: buyer types,
procurement, compute, cloud and surveillance words) brings along its equivalents, preferring
those in the other script. No translation service is asked: the equivalents are the ones the
project keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ground.config import ConfigError, format_validation_error, read_yaml_mapping
from index.entities import Entity, Watchlist, fold

# Watchlist types whose aliases are not names of the thing asked for: commentary cues would pull
# commentary up, and "China" would bring every PRC place name.
NOT_EXPANDED = frozenset({"commentary-cue", "prc-tie", "us-company-cue", "procurement-role"})
ALIASES_PER_NAME = 8        # equivalents one watchlist name brings (some entities have a hundred)
MAX_EXTRA = 60              # equivalents one query brings in all


class VocabularyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    groups: list[list[str]] = Field(min_length=1)


def load_vocabulary(path: Path) -> list[list[str]]:
    """The vocabulary's groups of equivalent words; a malformed file names its line."""
    try:
        parsed = VocabularyFile.model_validate(read_yaml_mapping(path))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc
    return [[str(word).strip() for word in group if str(word).strip()] for group in parsed.groups]


def _is_han(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def _other_script_first(words: Iterable[str], of: str) -> list[str]:
    """The words in the other script than ``of`` first (what reaches the other language), then the rest."""
    return sorted(words, key=lambda word: _is_han(word) == _is_han(of))


@dataclass(frozen=True)
class Expansion:
    """The query's names found (folded) and the equivalents they bring."""

    found: tuple[str, ...]
    extra: tuple[str, ...]


class QueryExpander:
    """Finds the watchlist's names and the vocabulary's words in a query (on word boundaries for
    Latin, as the watchlist matches pages) and gives their equivalents."""

    def __init__(self, watchlist: Watchlist | None, vocabulary: list[list[str]]) -> None:
        self._equivalents: dict[str, list[str]] = {}
        for group in vocabulary:
            for word in group:
                self._add(word, [other for other in group if fold(other) != fold(word)])
        for entity in watchlist.entities if watchlist else []:
            if entity.type not in NOT_EXPANDED:
                self._add_entity(entity)
        keys = [key for key in self._equivalents if key]
        self._finder = Watchlist([Entity(id=key, name=key, type="term", names=[key]) for key in keys])

    def _add(self, word: str, others: list[str]) -> None:
        key = fold(word)
        known = self._equivalents.setdefault(key, [])
        known.extend(other for other in others if other not in known)

    def _add_entity(self, entity: Entity) -> None:
        for name in entity.names:
            key = fold(name)
            # An alias that contains the name ("英伟达A100" for "A100") is matched by the name itself.
            others = [other for other in entity.names if key not in fold(other)]
            self._add(name, _other_script_first(others, name)[:ALIASES_PER_NAME])

    def expand(self, query: str) -> Expansion:
        """The names found and their equivalents: those in the other script first, across all the
        names (they are what reaches the other language; the same script's are mostly inflections)."""
        found = [key for hit in self._finder.find(query) for key in hit.aliases]
        crossing: dict[str, None] = {}
        same: dict[str, None] = {}
        for key in found:
            for word in self._equivalents.get(key, []):
                if fold(word) not in found:
                    (same if _is_han(word) == _is_han(key) else crossing).setdefault(word, None)
        return Expansion(tuple(found), tuple([*crossing, *(w for w in same if w not in crossing)][:MAX_EXTRA]))

    def dictionary(self) -> list[str]:
        """Every Chinese word it knows, for the segmenter's dictionary."""
        words = set(self._equivalents) | {w for others in self._equivalents.values() for w in others}
        return sorted(fold(word) for word in words if _is_han(word))
