"""Fixtures: a private data directory per test, a loopback web server, the shared corpora."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ground.config import Settings, load_settings
from loophole.webserver import serve_directory

pytest_plugins = ["tests.services"]  # pg_url, redis_prefix: the real services on loopback

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEV_CORPUS = SHARED / "corpus" / "dev"
REAL_CORPUS = SHARED / "corpus" / "real"
DEMO_WEB = ROOT / "seeds" / "demo"


def needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is not available")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LOOPHOLE_HOME in a temporary folder, so no test touches a user's data."""
    monkeypatch.setenv("LOOPHOLE_HOME", str(tmp_path / "home"))
    for name in ("LOOPHOLE_CONFIG", "LOOPHOLE_DATABASE_URL", "LOOPHOLE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An empty web root on loopback; tests write pages into it as bytes."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_directory(root) as base_url:
        yield root, base_url


@pytest.fixture(scope="session")
def demo_web() -> Iterator[str]:
    with serve_directory(DEMO_WEB) as base_url:
        yield base_url


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPHOLE_")}
    env.update({"LOOPHOLE_HOME": str(home), **extra})
    return env
