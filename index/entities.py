"""The entity watchlist: Chinese and English names and aliases, Traditional folded to Simplified."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import zhconv
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loophole.config import ConfigError, format_validation_error, read_yaml_mapping

# zhconv's default loader leaves its dictionary file open; loading it by path closes it.
zhconv.loaddict(str(Path(zhconv.__file__).with_name("zhcdict.json")))


class Entity(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    names: list[str] = Field(min_length=1)
    sanctioned: bool = False


class WatchlistFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    entities: list[Entity]


@dataclass(frozen=True)
class EntityHit:
    id: str
    name: str
    type: str
    matched: str


def fold(text: str) -> str:
    """Lower-case and Simplified Chinese, so 海康威視 and HIKVISION match their aliases."""
    return zhconv.convert(text, "zh-hans").lower()


def _alias_regex(alias: str) -> str:
    escaped = re.escape(fold(alias))
    # Latin aliases need word boundaries ("T4" must not match "NT4000"); Han ones do not.
    if re.search(r"[a-z0-9]", alias.lower()[:1]):
        escaped = r"(?<![a-z0-9])" + escaped
    if re.search(r"[a-z0-9]", alias.lower()[-1:]):
        escaped = escaped + r"(?![a-z0-9])"
    return escaped


class Watchlist:
    def __init__(self, entities: list[Entity], version: str = "0") -> None:
        self.entities = entities
        self.version = version
        self._lookup: dict[str, Entity] = {}
        aliases = []
        for entity in entities:
            for alias in entity.names + [entity.name]:
                key = fold(alias)
                if key and key not in self._lookup:
                    self._lookup[key] = entity
                    aliases.append(alias)
        aliases.sort(key=len, reverse=True)
        self._regex = re.compile("|".join(_alias_regex(alias) for alias in aliases)) if aliases else None

    def find(self, text: str) -> list[EntityHit]:
        """Distinct entities mentioned in the text, in order of first mention."""
        if self._regex is None:
            return []
        hits: dict[str, EntityHit] = {}
        for match in self._regex.finditer(fold(text)):
            entity = self._lookup.get(match.group(0))
            if entity and entity.id not in hits:
                hits[entity.id] = EntityHit(entity.id, entity.name, entity.type, match.group(0))
        return list(hits.values())


@lru_cache(maxsize=4)
def load_watchlist(path: Path) -> Watchlist:
    data = read_yaml_mapping(path)
    try:
        parsed = WatchlistFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc
    return Watchlist(parsed.entities, parsed.version)
