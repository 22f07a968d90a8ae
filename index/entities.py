"""The entity watchlist: Chinese and English names and aliases, Traditional folded to Simplified,
full-width forms folded to ASCII."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from extract.script import convert
from ground.config import ConfigError, format_validation_error, read_yaml_mapping

# US clouds, model makers and chip makers: their own sites speak for the provider (its docs, its price
# lists), and an API endpoint on their hosts is the official one, not a relay's.
PROVIDER_TYPES = frozenset({"us-cloud", "us-ai-service", "us-ai-model", "export-chip", "us-brand-hardware"})


def on_domains(host: str, domains: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``domains`` or under one (``docs.aws.amazon.com`` is on ``aws.amazon.com``)."""
    return any(host == domain or host.endswith("." + domain) for domain in domains)


class Entity(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    names: list[str] = Field(min_length=1)
    sanctioned: bool = False
    domains: list[str] = []   # the entity's own web hosts: a page there speaks in its voice
    generic: bool = False     # a kind of buyer ("police", 市政府), not one in the PRC by its name


class WatchlistFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    entities: list[Entity]


@dataclass(frozen=True)
class EntityHit:
    id: str
    name: str
    type: str
    matched: str                      # the first alias found
    aliases: tuple[str, ...] = ()     # every alias found, for the digest's "why it fired"
    generic: bool = False             # Entity.generic


def fold(text: str) -> str:
    """NFKC, Simplified Chinese and lower case, so 海康威視, HIKVISION and ＨＩＫＶＩＳＩＯＮ (full-width
    forms, common in Chinese notices) all match their aliases."""
    return convert(unicodedata.normalize("NFKC", text), "zh-hans").lower()


def written_in_traditional(text: str, sample: int = 3000) -> bool:
    """Whether Chinese text is written in Traditional characters (Taiwan, Hong Kong, Macau): more
    than one in twenty of its Han characters change when converted to Simplified."""
    han = [char for char in text[:sample] if "\u4e00" <= char <= "\u9fff"]
    if len(han) < 20:
        return False
    simplified = convert("".join(han), "zh-hans")
    changed = sum(1 for before, after in zip(han, simplified, strict=False) if before != after)
    return changed > len(han) / 20


_SUFFIXES = frozenset({"com", "cn", "net", "org", "io", "ai", "co", "hk", "sg", "tw", "us", "eu", "uk"})


def brand_of(domain: str) -> str:
    """``hikvision.com.cn`` -> ``hikvision``: the name left of the public suffix."""
    labels = domain.lower().split(".")
    while len(labels) > 1 and labels[-1] in _SUFFIXES:
        labels.pop()
    return labels[-1]


def _is_word_char(char: str) -> bool:
    return bool(char) and char.isascii() and char.isalnum()


class Watchlist:
    """Names found by one Aho-Corasick pass (pyahocorasick): a regex alternation of ~2,000
    aliases cost 40 ms per page in Python's re, more than scoring the page."""

    def __init__(self, entities: list[Entity], version: str = "0") -> None:
        self.entities = entities
        self.version = version
        self._lookup: dict[str, Entity] = {}
        self._automaton = ahocorasick.Automaton()
        for entity in entities:
            for alias in entity.names + [entity.name]:
                key = fold(alias)
                if key and key not in self._lookup:
                    self._lookup[key] = entity
                    self._automaton.add_word(key, key)
        if self._lookup:
            self._automaton.make_automaton()
        # Read for every page scored (index.endpoints): gathered once.
        self.provider_domains = tuple(domain for entity in entities if entity.type in PROVIDER_TYPES
                                      for domain in entity.domains)

    def _matches(self, text: str) -> list[str]:
        return [key for _, key in self._spans(text)]

    def _spans(self, text: str) -> list[tuple[int, str]]:
        """Leftmost, then longest, non-overlapping aliases with where they start; a Latin alias must
        stand as a word ("T4" must not match "NT4000"), a Han one need not."""
        candidates = []
        for end, key in self._automaton.iter(text):
            start = end - len(key) + 1
            if _is_word_char(key[0]) and _is_word_char(text[start - 1:start]):
                continue
            if _is_word_char(key[-1]) and _is_word_char(text[end + 1:end + 2]):
                continue
            candidates.append((start, -len(key), key))
        found, cursor = [], 0
        for start, negative_length, key in sorted(candidates):
            if start >= cursor:
                found.append((start, key))
                cursor = start - negative_length
        return found

    def find(self, text: str) -> list[EntityHit]:
        """Distinct entities mentioned in the text, in order of first mention, with every alias found."""
        if not self._lookup:
            return []
        found: dict[str, tuple[Entity, list[str]]] = {}
        for key in self._matches(fold(text)):
            entity = self._lookup[key]
            aliases = found.setdefault(entity.id, (entity, []))[1]
            if key not in aliases:
                aliases.append(key)
        return [EntityHit(entity.id, entity.name, entity.type, aliases[0], tuple(aliases), entity.generic)
                for entity, aliases in found.values()]

    def owner_of(self, url: str) -> Entity | None:
        """The entity whose own site serves the address (``www.hikvision.com/cn/news/…`` is
        Hikvision's), or None. A sanctioned vendor's regional sites carry its brand in the host
        (``hikvision-europe.example``, ``cloudwalk-intl.example.sg``); a cloud's only its domains,
        since ``news.google.com`` is not Google Cloud speaking."""
        host = (urlsplit(url).hostname or "").lower()
        words = set(re.split(r"[.-]", host))
        for entity in self.entities:
            if on_domains(host, entity.domains):
                return entity
            if entity.type == "sanctioned-vendor" and words & {brand_of(domain) for domain in entity.domains}:
                return entity
        return None

    def mentions(self, folded: str, entity_type: str) -> list[int]:
        """Where names of one entity type start in already folded text."""
        return [start for start, key in self._spans(folded) if self._lookup[key].type == entity_type]

    def types_in(self, folded: str) -> set[str]:
        """Entity types named in already folded text (a scoring unit): cheap enough per unit."""
        if not self._lookup:
            return set()
        return {self._lookup[key].type for key in self._matches(folded)}


@lru_cache(maxsize=4)
def load_watchlist(path: Path) -> Watchlist:
    data = read_yaml_mapping(path)
    try:
        parsed = WatchlistFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc
    return Watchlist(parsed.entities, parsed.version)
