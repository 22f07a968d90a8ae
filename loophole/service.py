"""``loophole run``: the long-running service. APScheduler 3 runs crawl jobs on each source's cron
and digest jobs at each subscription's local time.

- The job store is the project's database (SQLAlchemyJobStore), so a restart keeps the
  schedule and a run missed while the service was down is run once on start (coalesced).
- Jobs are module-level functions taking plain strings, as a persistent job store requires;
  each reads the settings afresh, so a job never runs on a stale configuration.
- ``max_instances=1`` stops overlap inside one process; a lease row in ``job_locks`` stops it
  across processes and hosts (two services on one database run each job once at a time).
- Crawls run in a child process (Scrapy's reactor starts once per process); SIGTERM stops
  new runs, asks running crawls to finish, waits for running digests, and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from ground.config import ConfigError, Settings, Subscription, load_settings
from index.store import CrawlRun, JobLock, Store

log = logging.getLogger(__name__)
JOB_PREFIXES = ("crawl:", "digest:")
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()


# --- cross-process lock --------------------------------------------------------------------

def acquire_lock(store: Store, name: str, ttl_seconds: int, owner: str = OWNER) -> bool:
    """Take the lease ``name`` unless someone holds an unexpired one (atomic on SQLite and PostgreSQL)."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl_seconds)
    with store.session() as session:
        taken = session.execute(update(JobLock).where(JobLock.name == name, JobLock.expires_at < now)
                                .values(owner=owner, acquired_at=now, expires_at=expires))
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return True
    try:
        with store.session() as session:
            session.add(JobLock(name=name, owner=owner, acquired_at=now, expires_at=expires))
    except IntegrityError:
        return False
    return True


def release_lock(store: Store, name: str, owner: str = OWNER) -> None:
    with store.session() as session:
        session.execute(delete(JobLock).where(JobLock.name == name, JobLock.owner == owner))


@contextmanager
def job_lock(settings: Settings, name: str) -> Iterator[bool]:
    """Yields whether this process holds the job's lease; releases it afterwards."""
    store = Store(settings.db_url)
    held = acquire_lock(store, name, settings.scheduler.lock_ttl_seconds)
    try:
        if not held:
            log.warning("%s is already running elsewhere; this run is skipped", name)
        yield held
    finally:
        if held:
            release_lock(store, name)
        store.close()


# --- jobs (module-level: the persistent job store references them by import path) -----------

def digest_job(subscription: str) -> None:
    from alerts.jobs import run_digest

    settings = load_settings()
    with job_lock(settings, f"digest:{subscription}") as held:
        if held:
            run = run_digest(settings, subscription)
            log.info("digest %s: %s", subscription,
                     ", ".join(f"{r.channel}={r.count}{' FAILED' if r.error else ''}" for r in run.results))


def crawl_job(source: str) -> None:
    settings = load_settings()
    with job_lock(settings, f"crawl:{source}") as held:
        if held:
            _crawl_in_child(settings, source)


def _crawl_in_child(settings: Settings, source: str) -> None:
    """``loophole crawl SOURCE`` in a child; a crash or timeout is recorded as a failing crawl run."""
    started = datetime.now(UTC)
    child = subprocess.Popen([sys.executable, "-m", "loophole.cli", "crawl", source], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    with _children_lock:
        _children.add(child)
    try:
        _, stderr = child.communicate(timeout=settings.scheduler.crawl_timeout_seconds)
        reason = _last_line(stderr) if child.returncode else ""
    except subprocess.TimeoutExpired:
        child.terminate()
        child.communicate(timeout=60)
        reason = f"timed out after {settings.scheduler.crawl_timeout_seconds}s"
    finally:
        with _children_lock:
            _children.discard(child)
    if reason and child.returncode != -signal.SIGTERM:
        _record_failure(settings, source, started, f"exit {child.returncode}: {reason}")


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no output"


def _record_failure(settings: Settings, source: str, started: datetime, reason: str) -> None:
    log.warning("crawl %s failed: %s", source, reason)
    store = Store(settings.db_url)
    try:
        with store.session() as session:
            session.add(CrawlRun(source=source, started_at=started, finished_at=datetime.now(UTC),
                                 health="failing", reason=reason, stats={}))
    finally:
        store.close()


# --- the schedule ------------------------------------------------------------------------

@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str
    args: tuple[str, ...]
    trigger: CronTrigger


def digest_trigger(sub: Subscription) -> CronTrigger:
    at = sub.local_time
    return CronTrigger(day_of_week=sub.days, hour=at.hour, minute=at.minute, timezone=ZoneInfo(sub.timezone))


def desired_jobs(settings: Settings) -> list[JobSpec]:
    """One crawl job per source configured to run (its `schedule`, else the default) and one digest
    job per subscription. A source its spider cannot run (unknown options) stops the service here."""
    from crawlers.spiders.registry import check_sources
    from ground.sources import scheduled_sources

    specs = []
    sources = scheduled_sources(settings)
    check_sources(sources)
    for source in sources:
        cron = source.schedule or settings.scheduler.default_crawl_schedule
        zone = ZoneInfo(source.timezone or settings.scheduler.timezone)   # the portal's own clock
        try:
            trigger = CronTrigger.from_crontab(cron, timezone=zone)
        except ValueError as exc:
            raise ConfigError(f"{settings.sources_file}: source {source.id}: bad schedule {cron!r}: {exc}") from exc
        specs.append(JobSpec(f"crawl:{source.id}", "loophole.service:crawl_job", (source.id,), trigger))
    for sub in settings.effective_subscriptions():
        specs.append(JobSpec(f"digest:{sub.name}", "loophole.service:digest_job", (sub.name,), digest_trigger(sub)))
    return specs


def build_scheduler(settings: Settings) -> BackgroundScheduler:
    grace = settings.scheduler.misfire_grace_seconds
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=settings.db_url, tablename="apscheduler_jobs")},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=ZoneInfo(settings.scheduler.timezone))


def sync_jobs(scheduler: BackgroundScheduler, specs: list[JobSpec]) -> dict[str, str]:
    """Make the stored schedule match the configuration; unchanged jobs keep their next run time,
    so a run missed while the service was down still happens. Returns what changed per job id."""
    stored = {job.id: job for job in scheduler.get_jobs() if job.id.startswith(JOB_PREFIXES)}
    changes: dict[str, str] = {}
    for spec in specs:
        job = stored.pop(spec.id, None)
        if job is not None and repr(job.trigger) == repr(spec.trigger) and tuple(job.args) == spec.args \
                and job.func_ref == spec.func:
            continue
        scheduler.add_job(spec.func, spec.trigger, args=list(spec.args), id=spec.id, name=spec.id,
                          replace_existing=True)
        changes[spec.id] = "added" if job is None else "changed"
    for job_id in stored:
        scheduler.remove_job(job_id)
        changes[job_id] = "removed"
    return changes


def _stop_children() -> None:
    with _children_lock:
        for child in _children:
            child.terminate()


def _set_from_signal(stop: threading.Event) -> None:
    """Set ``stop`` from a signal handler without deadlocking.

    A handler runs in the main thread between bytecodes; if that thread is inside
    ``stop.wait()`` holding the event's (non-reentrant) lock, a direct ``stop.set()`` waits on
    itself forever. Another thread takes the lock once the main thread has released it.
    """
    threading.Thread(target=stop.set, name="signal-stop", daemon=True).start()


def run_service(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); then finish running jobs and exit cleanly."""
    settings.ensure_dirs()
    stop = stop or threading.Event()
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    try:
        for job_id, change in sync_jobs(scheduler, desired_jobs(settings)).items():
            log.info("job %s %s", job_id, change)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: _set_from_signal(stop))
        scheduler.resume()
        for job in scheduler.get_jobs():
            log.info("next %s at %s", job.id, job.next_run_time)
        log.warning("loophole run: scheduler started with %d jobs", len(scheduler.get_jobs()))
        stop.wait()
    finally:
        log.warning("loophole run: shutting down")
        scheduler.pause()
        _stop_children()
        scheduler.shutdown(wait=True)


def next_runs(settings: Settings) -> list[dict[str, Any]]:
    """Each configured job's next fire time from now (for ``loophole run --dry-run``)."""
    now = datetime.now(UTC)
    return [{"id": spec.id, "next": spec.trigger.get_next_fire_time(None, now).isoformat()}
            for spec in desired_jobs(settings)]
