"""Crawl health for the digest: which of the sources this installation runs need attention, why,
and since when.

A monitor that silently stops seeing a portal is worse than one that is down; but a health
line that is always red is read by nobody. So an incremental run that found its lists as
before and every notice on them already stored is healthy ("nothing new"), and only these
are reported:

* ``blocked``: the run stopped on block pages or a long Retry-After (the source backs off);
* ``failing``: the run crashed, timed out or ended early, or its lists answered only errors;
* ``missing``: more than ``MISSING_SHARE`` of the notices it meant to fetch never arrived;
* ``empty``: its lists named no notice although an earlier run's did, or never have;
* ``overdue``: its schedule should have started a run, and none was recorded (``never``:
  not one yet since this installation began crawling).

Only sources configured to run (``scheduler.sources``; by default every source that is not
part of the demo web) are judged; ``since`` is when the current unhealthy spell began.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.views import aware
from ground.sources import Source
from index.store import CrawlRun

# Runs read per source to find when an unhealthy spell began and whether lists ever named notices.
HISTORY_RUNS = 60
# A few notices lost to a timeout are the next run's; more than this share is a broken source.
MISSING_SHARE = 0.1


@dataclass
class SourceHealth:
    source: str
    status: str            # ok | blocked | failing | missing | empty | overdue | never
    reason: str
    last_run: datetime | None
    stored: int = 0
    since: datetime | None = None   # the first run (or due time) of the current unhealthy spell

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _count(stats: dict, key: str) -> int:
    try:
        return int(stats.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0


def _http_errors(stats: dict) -> str:
    """Non-200 answers and download failures, as "HTTP 503 x3, TimeoutError x2"."""
    found = []
    for prefix, label in (("downloader/response_status_count/", "HTTP "),
                          ("downloader/exception_type_count/", "")):
        for key in sorted(k for k in stats if k.startswith(prefix) and not k.endswith("/200")):
            found.append(f"{label}{key[len(prefix):].rsplit('.', 1)[-1]} x{_count(stats, key)}")
    return ", ".join(found)


def _pages(stats: dict) -> int:
    return sum(_count(stats, f"ingest/{k}") for k in ("stored", "unchanged", "rejected"))


def _listed(stats: dict) -> int:
    """Notices the run's lists named (or, for a site whose start pages are the content, pages it got)."""
    return max(_count(stats, "pages/expected"), _count(stats, "pages/fetched"), _pages(stats))


def judge(run: CrawlRun, listed_before: bool) -> tuple[str, str]:
    """(status, reason) of one run; ``listed_before``: an earlier run's lists named notices."""
    stats = run.stats or {}
    if run.health in ("degraded", "blocked"):
        return "blocked", run.reason or run.health
    if run.health not in ("ok", ""):
        return "failing", run.reason or run.health
    finish = str(stats.get("finish_reason", "finished") or "finished")
    if finish != "finished":
        return "failing", f"run ended early ({finish})"
    errors = _http_errors(stats)
    if _listed(stats) == 0:
        if errors:
            return "failing", f"lists answered only errors ({errors})"
        if listed_before:
            return "empty", "lists named no notice, though earlier runs' did"
        return "empty", "lists have never named a notice (selectors, search terms or the site changed?)"
    return _judge_fetches(stats, errors)


def _judge_fetches(stats: dict, errors: str) -> tuple[str, str]:
    listed, known = _count(stats, "pages/expected"), _count(stats, "pages/known")
    wanted = max(0, listed - known - _count(stats, "pages/over_limit"))
    fetched = _count(stats, "pages/fetched")
    missing = max(0, wanted - fetched)
    if missing and missing > MISSING_SHARE * wanted:
        return "missing", f"{missing} of {wanted} new notices not fetched" + (f" ({errors})" if errors else "")
    stored = _count(stats, "ingest/stored")
    if wanted == 0 and stored == 0:
        return "ok", f"nothing new: {listed} listed, all stored before"
    return "ok", f"{_pages(stats)} pages, {stored} new or changed"


def _health_from_runs(source: str, runs: list[CrawlRun]) -> SourceHealth:
    """The latest run's verdict; when unhealthy, ``since`` is the first run of the unbroken bad spell."""
    verdicts: list[tuple[CrawlRun, str, str]] = []
    listed_before = False
    for run in runs:   # oldest first
        status, reason = judge(run, listed_before)
        listed_before = listed_before or _listed(run.stats or {}) > 0
        verdicts.append((run, status, reason))
    latest, status, reason = verdicts[-1]
    health = SourceHealth(source, status, reason, aware(latest.finished_at or latest.started_at),
                          _count(latest.stats or {}, "ingest/stored"))
    if status != "ok":
        start = len(verdicts) - 1
        while start > 0 and verdicts[start - 1][1] != "ok":
            start -= 1
        health.since = aware(verdicts[start][0].started_at)
    return health


def _overdue(health: SourceHealth, source: Source, now: datetime, grace: timedelta) -> SourceHealth:
    """A healthy last run is no comfort when the schedule has since called for another that never came."""
    last = health.last_run
    due = source.next_run_after(last) if last else None
    if health.ok and due is not None and due + grace < now:
        return SourceHealth(source.id, "overdue", f"no run since {last:%Y-%m-%d %H:%M} UTC; one was due "
                            f"{due:%Y-%m-%d %H:%M} UTC", last, health.stored, due)
    return health


def _never(source: Source, began: datetime | None, now: datetime, grace: timedelta) -> SourceHealth | None:
    """A source with no run at all needs attention once its schedule came round after crawling began here."""
    due = source.next_run_after(began) if began else None
    if due is None or due + grace >= now:
        return None
    return SourceHealth(source.id, "never", f"never crawled; a run was due {due:%Y-%m-%d %H:%M} UTC", None, 0, due)


def crawl_health(session: Session, sources: Sequence[Source], now: datetime, grace: timedelta) -> list[SourceHealth]:
    """Health of each source configured to run; ``grace``: how long a due run may take to be recorded."""
    began = aware(session.scalar(select(func.min(CrawlRun.started_at))))
    result = []
    for source in sources:
        runs = list(session.scalars(select(CrawlRun).where(CrawlRun.source == source.id)
                                    .order_by(CrawlRun.id.desc()).limit(HISTORY_RUNS)))
        if runs:
            result.append(_overdue(_health_from_runs(source.id, runs[::-1]), source, now, grace))
        elif (never := _never(source, began, now, grace)) is not None:
            result.append(never)
    return result
