"""``loophole sources --coverage``: which procurement sources carry each province's notices, and
when each last ran, so a gap (a province no source reaches, a source that stopped running) shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ground.sources import CENTRAL, PROVINCES, Source
from index.store import Store


def last_runs(store: Store, sources: list[Source]) -> dict[str, dict[str, Any]]:
    """Each source's latest crawl run: when it finished and how it went (None: never ran)."""
    runs: dict[str, dict[str, Any]] = {}
    for source in sources:
        run = store.latest_crawl_run(source.id)
        finished: datetime | None = run.finished_at if run is not None else None
        runs[source.id] = {"last_run": finished.isoformat(timespec="minutes") if finished else None,
                           "health": run.health if run is not None else None}
    return runs


def coverage(sources: list[Source], runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per province: the sources that cover it (national ones included), with their last run."""
    return [{"province": province,
             "sources": [{"id": source.id, **runs.get(source.id, {"last_run": None, "health": None})}
                         for source in sources if source.covers(province)]}
            for province in (CENTRAL, *PROVINCES)]


def describe(entry: dict[str, Any]) -> str:
    """``ccgp (2026-12-06T07:30+00:00, ok)`` or ``ggzy (never run)``."""
    if entry["last_run"] is None:
        return f"{entry['id']} (never run)"
    return f"{entry['id']} ({entry['last_run']}, {entry['health']})"
