"""Crawl health for the digest: which sources are blocked, failing or returning nothing, and why.

A monitor that silently stops seeing a portal is worse than one that is down; the digest
names every source whose latest crawl did not bring content back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.views import aware
from index.store import CrawlRun


@dataclass
class SourceHealth:
    source: str
    status: str            # ok | blocked | failing | empty | never
    reason: str
    last_run: datetime | None
    stored: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _http_errors(stats: dict) -> str:
    prefix = "downloader/response_status_count/"
    codes = {k[len(prefix):]: v for k, v in stats.items() if k.startswith(prefix) and not k.endswith("/200")}
    return ", ".join(f"HTTP {code} x{count}" for code, count in sorted(codes.items()))


def judge(run: CrawlRun) -> SourceHealth:
    """One run's verdict: its own health flag first, then whether any page came back."""
    stats = run.stats or {}
    items = sum(int(stats.get(f"ingest/{k}", 0) or 0) for k in ("stored", "unchanged", "rejected"))
    stored = int(stats.get("ingest/stored", 0) or 0)
    finished = aware(run.finished_at or run.started_at)
    if run.health not in ("ok", ""):
        status = "blocked" if run.health in ("degraded", "blocked") else run.health
        return SourceHealth(run.source, status, run.reason or run.health, finished, stored)
    if items == 0:
        detail = _http_errors(stats) or str(stats.get("finish_reason", "")) or "no pages"
        return SourceHealth(run.source, "empty", f"returned nothing ({detail})", finished, stored)
    return SourceHealth(run.source, "ok", f"{items} pages, {stored} new or changed", finished, stored)


def crawl_health(session: Session, sources: list[str]) -> list[SourceHealth]:
    """The latest run of each source (sources never crawled are listed as such)."""
    latest = (select(CrawlRun.source, func.max(CrawlRun.id).label("id")).group_by(CrawlRun.source).subquery())
    runs = {run.source: run for run in session.scalars(select(CrawlRun).join(latest, CrawlRun.id == latest.c.id))}
    names = sources or sorted(runs)
    return [judge(runs[name]) if name in runs else SourceHealth(name, "never", "not crawled yet", None)
            for name in names]
