"""The pattern library: YAML files validated on load, with errors that name file and field.

A pattern is a description, examples, counter-examples and keywords; adding one is a YAML
file and no code. ``requires`` optionally names entity types (from the watchlist) that a
document must mention for the pattern to fire: e.g. a US cloud or an export-controlled chip.
Each inner list is one condition satisfied by any of its types. ``cues``, of the same shape,
names the entity types that the decisive sentence itself names; a unit naming them all scores higher.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from extract.kind import EVIDENCE_KINDS
from ground.config import ConfigError, format_validation_error, read_yaml_mapping


class Pattern(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    title: str
    description: str
    examples: list[str] = Field(min_length=1)
    counter_examples: list[str] = []
    keywords: list[str] = []
    requires: list[list[str]] = []
    # Document kinds this pattern can be evidence in (empty: every primary-source kind). A
    # pattern defined by who *procures* something is only evidenced by procurement notices.
    kinds: list[str] = []
    # The probability (0-1) above which this pattern alerts; without it, the decision model's cut.
    threshold: float | None = Field(None, gt=0, lt=1)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - EVIDENCE_KINDS)
        if unknown:
            raise ValueError(f"unknown or non-evidence kind(s) {unknown}; use {sorted(EVIDENCE_KINDS)}")
        return values

    @field_validator("examples", "counter_examples", "keywords")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        cleaned = [str(value).strip() for value in values]
        if any(not value for value in cleaned):
            raise ValueError("blank entry")
        return cleaned


class PatternFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = "0"
    patterns: list[Pattern] = Field(min_length=1)


class PatternLibrary:
    def __init__(self, patterns: Sequence[Pattern], version: str) -> None:
        self.patterns = list(patterns)
        self.version = version
        self.by_id = {pattern.id: pattern for pattern in self.patterns}

    @property
    def fingerprint(self) -> str:
        """Changes whenever any pattern's content changes (used to cache example vectors)."""
        payload = json.dumps([p.model_dump() for p in self.patterns], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def load_pattern_file(path: Path) -> PatternFile:
    data = read_yaml_mapping(path)
    try:
        return PatternFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc


def load_library(paths: Sequence[Path]) -> PatternLibrary:
    """Merge files in order; a later file may not redefine an id (that is almost always a mistake)."""
    patterns: list[Pattern] = []
    versions = []
    for path in paths:
        loaded = load_pattern_file(Path(path))
        versions.append(loaded.version)
        for pattern in loaded.patterns:
            if any(existing.id == pattern.id for existing in patterns):
                raise ConfigError(f"{path}: pattern id {pattern.id!r} is already defined")
            patterns.append(pattern)
    return PatternLibrary(patterns, "+".join(versions))
