"""The source registry (seeds/sources.yaml): what to crawl, with which spider, how politely."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loophole.config import ConfigError, format_validation_error, read_yaml_mapping


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = ""
    kind: Literal["procurement", "vendor", "marketplace", "reseller", "news"]
    spider: str
    base_url: str
    start: list[str] = Field(min_length=1)
    follow: list[str] = []                 # path prefixes a site spider may follow
    browser: bool = False
    schedule: str = "0 6 * * *"            # cron, in the scheduler's time zone
    allowed_domains: list[str] = []
    download_delay: float | None = None    # None: the global politeness default
    demo: bool = False                     # part of the local mock web served by `loophole demo`
    allow_private: bool = False            # may follow links to private/loopback addresses (tests, intranets)

    def domains_for(self, base_url: str) -> list[str]:
        """The configured domains plus the host actually crawled (a mirror or a test server)."""
        return sorted({urlsplit(base_url).hostname or "", *self.allowed_domains} - {""})


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Source]


@lru_cache(maxsize=4)
def load_sources(path: Path) -> dict[str, Source]:
    data = read_yaml_mapping(path)
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc
    ids = [source.id for source in parsed.sources]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ConfigError(f"{path}: duplicate source ids: {', '.join(sorted(duplicates))}")
    return {source.id: source for source in parsed.sources}
