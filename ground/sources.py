"""The source registry (seeds/sources.yaml): what to crawl, with which spider, how politely.

Every entry is validated on load; an error names the file, the source (by index and id)
and the field, so a typo in one source never silently drops it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ground.config import ConfigError, Settings, check_timezone, read_yaml_mapping, yaml_line

SourceKind = Literal["procurement", "vendor", "marketplace", "reseller", "news"]
# The 31 provincial-level divisions of the mainland, by the short names portals use. A source's
# ``provinces`` lists those its notices come from; ``all`` stands for every one (a national platform).
PROVINCES = ("北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏", "浙江", "安徽",
             "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西", "海南", "重庆", "四川", "贵州", "云南",
             "西藏", "陕西", "甘肃", "青海", "宁夏", "新疆")
ALL_PROVINCES = "all"
CENTRAL = "中央"   # central-government buyers (CCGP's 中央公告), listed before the provinces
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Politeness(_Strict):
    """Per-source overrides of the global politeness defaults (None: keep the default)."""

    download_delay: float | None = Field(None, ge=0)
    concurrency: int | None = Field(None, ge=1)
    obey_robots: bool | None = None
    autothrottle: bool | None = None

    def scrapy_settings(self) -> dict[str, Any]:
        names = {"download_delay": "DOWNLOAD_DELAY", "concurrency": "CONCURRENT_REQUESTS_PER_DOMAIN",
                 "obey_robots": "ROBOTSTXT_OBEY", "autothrottle": "AUTOTHROTTLE_ENABLED"}
        return {names[key]: value for key, value in self.model_dump().items() if value is not None}


class Search(_Strict):
    """Keyword search on the source: fixed terms plus, optionally, every watchlist vendor name."""

    terms: list[str] = []
    watchlist_types: list[str] = []        # entity types from the watchlist whose names are searched
    days: int = Field(30, ge=1, le=3650)   # date range ending today
    params: dict[str, str] = {}            # extra query parameters (notice type, category, ...)


class Source(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = ""
    kind: SourceKind
    spider: str
    base_url: str = Field(pattern=r"^https?://[^/\s]+")
    start: list[str] = []                  # start paths (list pages, index pages)
    seeds_file: str | None = None          # more start URLs, one a line (relative to sources.yaml)
    search: Search | None = None
    follow: list[str] = []                 # path prefixes a site spider may follow
    browser: bool = False
    schedule: str = "0 6 * * *"            # cron (minute hour day month weekday) ...
    timezone: str = "Asia/Shanghai"        # ... in this time zone (the portals' own clock)
    allowed_domains: list[str] = []
    politeness: Politeness = Politeness()
    # Spider-specific settings, checked against the spider's own typed Options when the spider is
    # chosen (crawlers.spiders.registry): ground knows no spiders, so here they stay as written.
    options: dict[str, Any] = {}
    demo: bool = False                     # part of the local mock web served by `loophole demo`
    scheduled: bool = True                 # crawled on `schedule` by `loophole run` (see scheduled_sources)
    allow_private: bool = False            # may follow links to private/loopback addresses (tests, intranets)
    provinces: list[str] = []              # provinces whose notices it carries (PROVINCES, "all", CENTRAL)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        parts = value.split()
        if len(parts) != 5 or not all(_CRON_FIELD.match(part) for part in parts):
            raise ValueError("expected a 5-field cron expression (minute hour day month weekday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("provinces")
    @classmethod
    def _known_provinces(cls, value: list[str]) -> list[str]:
        if any(name not in (*PROVINCES, ALL_PROVINCES, CENTRAL) for name in value):
            raise ValueError(f"unknown province (use {ALL_PROVINCES!r}, {CENTRAL!r} or a short name: 江苏, 内蒙古)")
        return value

    # Where the entry was read: (sources file, index in its list), so that a check made later (the
    # spider's options) names the file and line as load_sources does.
    _origin: tuple[Path, int] | None = PrivateAttr(None)

    def problem(self, loc: tuple[str | int, ...], message: str) -> str:
        """``file:line: field sources.N.<loc> (source id=ID): message``, the form of load_sources's
        errors, for a field of this entry found wrong after loading."""
        if self._origin is None:
            return f"field {'.'.join(map(str, loc))} (source id={self.id}): {message}"
        path, index = self._origin
        full = ("sources", index, *loc)
        line = yaml_line(path, full) if path.exists() else None
        return f"{path}{f':{line}' if line else ''}: field {'.'.join(map(str, full))} (source id={self.id}): {message}"

    def covers(self, province: str) -> bool:
        return province in self.provinces or (ALL_PROVINCES in self.provinces and province in PROVINCES)

    @model_validator(mode="after")
    def _has_entry_point(self) -> Source:
        if not (self.start or self.search or self.seeds_file):
            raise ValueError("needs start paths, a search or a seeds_file")
        return self

    def next_run_after(self, when: datetime) -> datetime | None:
        """The schedule's first start after ``when`` (cron read in the source's time zone), in UTC."""
        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger.from_crontab(self.schedule, timezone=ZoneInfo(self.timezone))
        except ValueError:
            return None   # refused with the file and source named where the schedule is set up (loophole.service)
        fire = trigger.get_next_fire_time(None, when)
        return fire.astimezone(UTC) if fire is not None else None

    def domains_for(self, base_url: str) -> list[str]:
        """The configured domains plus the host actually crawled (a mirror or a test server)."""
        return sorted({urlsplit(base_url).hostname or "", *self.allowed_domains} - {""})


class SourcesFile(_Strict):
    sources: list[Source]


def _describe(path: Path, data: dict, error: ValidationError) -> str:
    """``file:line: field sources.2.schedule (source id=ccgp): message``, one line per problem;
    input values are never echoed."""
    raw_entries = data.get("sources")
    entries: list[Any] = raw_entries if isinstance(raw_entries, list) else []
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        line = yaml_line(path, loc) if path.exists() else None
        index = loc[1] if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int) else None
        entry = entries[index] if index is not None and index < len(entries) else None
        source = f" (source id={entry.get('id')})" if isinstance(entry, dict) and entry.get("id") else ""
        lines.append(f"{path}{f':{line}' if line else ''}: field {'.'.join(map(str, loc))}{source}: {item['msg']}")
    return "\n".join(lines)


@lru_cache(maxsize=4)
def load_sources(path: Path) -> dict[str, Source]:
    data = read_yaml_mapping(path)
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, data, exc)) from exc
    ids = [source.id for source in parsed.sources]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ConfigError(f"{path}: duplicate source ids: {', '.join(sorted(duplicates))}")
    for index, source in enumerate(parsed.sources):
        source._origin = (path, index)
    for source in parsed.sources:
        if source.seeds_file and not (path.parent / source.seeds_file).is_file():
            raise ConfigError(f"{path}: source {source.id} field seeds_file: no such file {source.seeds_file}")
    return {source.id: source for source in parsed.sources}


def scheduled_sources(settings: Settings) -> list[Source]:
    """The sources this installation crawls on their schedule (``loophole run``) and whose health
    the digest reports: ``scheduler.sources`` if set, else every source not marked ``scheduled:
    false`` (the demo's own sites, which exist only on the mock web that ``loophole demo`` serves)."""
    registry = load_sources(settings.sources_file)
    chosen = settings.scheduler.sources
    if chosen is None:
        return [source for source in registry.values() if source.scheduled]
    unknown = [name for name in chosen if name not in registry]
    if unknown:
        raise ConfigError(f"scheduler.sources: unknown source {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(registry)}")
    return [registry[name] for name in dict.fromkeys(chosen)]


def seed_urls(sources_path: Path, source: Source) -> list[str]:
    """URLs from the source's seeds file: one a line, ``#`` comments and blank lines skipped."""
    if not source.seeds_file:
        return []
    lines = (sources_path.parent / source.seeds_file).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
