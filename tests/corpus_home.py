"""The dev corpus ingested once per test process, shared by the search and web tests.

Ingesting the 90 labelled pages takes ~20 s (embedding); doing it once per session keeps
the search-quality and browser tests fast. Tests that change data work on a copy.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from ground.config import Settings, load_settings
from loophole.evaluate import read_labels
from loophole.pipeline import Monitor, RawPage


@lru_cache(maxsize=1)
def ingested_corpus(folder: Path) -> Path:
    """A data directory (LOOPHOLE_HOME) holding the whole labelled folder, built once."""
    home = Path(tempfile.mkdtemp(prefix="loophole-corpus-"))
    atexit.register(shutil.rmtree, home, True)
    monitor = Monitor(settings_for(home))
    try:
        for label in read_labels(folder):
            monitor.ingest(RawPage(url=label.url, body=(folder / label.file).read_bytes(), source=_source(label.url)))
    finally:
        monitor.close()
    return home


def _source(url: str) -> str:
    """A plausible source id per host, so the source filter has something to filter."""
    host = url.split("/")[2] if "://" in url else "local"
    return host.removeprefix("www.").split(".")[0] or "local"


def settings_for(home: Path) -> Settings:
    return load_settings(path=None, home=home)


def copy_of(home: Path, target: Path) -> Path:
    """A private copy for a test that writes (triage, extra pages)."""
    shutil.copytree(home, target)
    return target
