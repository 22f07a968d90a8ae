"""``loophole run``: a persistent schedule in the project database, time zones, coalesced missed
runs, one run at a time across processes, crawl failures recorded, and a clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text

from ground.config import Settings, load_settings
from index.store import CrawlRun, Store
from loophole.service import (
    acquire_lock,
    build_scheduler,
    crawl_job,
    desired_jobs,
    digest_job,
    release_lock,
    sync_jobs,
)
from tests.alerts_helpers import Inbox, add_alert, smtp_server
from tests.conftest import ROOT, cli_env


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


def configure(home: Path, subscriptions: list[dict], smtp_port: int = 1) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(yaml.safe_dump({
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "retries": 0},
        "subscriptions": subscriptions}), encoding="utf-8")
    settings = load_settings()
    settings.ensure_dirs()
    return settings


def stored_jobs(settings: Settings) -> dict[str, datetime]:
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    try:
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)


def test_digest_runs_at_the_subscribers_local_time(home: Path) -> None:
    settings = configure(home, [{"name": "beijing", "time": "08:00", "timezone": "Asia/Shanghai"},
                                {"name": "dc", "time": "07:30", "timezone": "America/New_York", "days": "mon-fri"}])
    specs = {spec.id: spec for spec in desired_jobs(settings)}
    after = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # a Friday, 08:00 in New York
    beijing = specs["digest:beijing"].trigger.get_next_fire_time(None, after)
    assert beijing.astimezone(UTC) == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)          # 08:00 CST
    dc = specs["digest:dc"].trigger.get_next_fire_time(None, after)
    assert dc.astimezone(UTC) == datetime(2026, 11, 23, 12, 30, tzinfo=UTC)            # Monday 07:30 EST
    summer = specs["digest:dc"].trigger.get_next_fire_time(None, datetime(2026, 7, 1, tzinfo=UTC))
    assert summer.astimezone(UTC).hour == 11                                            # 07:30 EDT
    # Sources keep their own cron and time zone (seeds/sources.yaml: 06:15 and 18:15 Beijing time).
    assert specs["crawl:ccgp"].trigger.get_next_fire_time(None, after).astimezone(UTC) == \
        datetime(2026, 11, 20, 22, 15, tzinfo=UTC)


def test_schedule_persists_across_restarts_and_follows_the_configuration(home: Path) -> None:
    settings = configure(home, [{"name": "daily", "time": "09:00"}])
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    changes = sync_jobs(scheduler, desired_jobs(settings))
    assert changes["digest:daily"] == "added" and "crawl:ccgp" in changes
    scheduler.shutdown(wait=False)
    before = stored_jobs(settings)
    assert before["digest:daily"].hour == 9

    scheduler = build_scheduler(settings)      # a restart with the same configuration changes nothing
    scheduler.start(paused=True)
    assert sync_jobs(scheduler, desired_jobs(settings)) == {}
    scheduler.shutdown(wait=False)

    settings = configure(home, [{"name": "weekly", "time": "10:00", "days": "mon"}])
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    changes = sync_jobs(scheduler, desired_jobs(settings))
    scheduler.shutdown(wait=False)
    assert changes == {"digest:weekly": "added", "digest:daily": "removed"}
    assert "digest:daily" not in stored_jobs(settings)


def test_missed_runs_are_coalesced_into_one(home: Path, smtp: tuple[Inbox, int],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    settings = configure(home, [{"name": "daily", "recipients": ["a@example.org"]}], port)
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(home / "config.yaml"))
    store = Store(settings.db_url)
    add_alert(store, "http://www.ccgp.gov.cn/cggg/t1.htm")
    store.close()
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    sync_jobs(scheduler, [s for s in desired_jobs(settings) if s.id.startswith("digest:")])
    # The service was down for three days: three daily runs were missed.
    scheduler.modify_job("digest:daily", next_run_time=datetime.now(UTC) - timedelta(days=3, minutes=-1))
    scheduler.resume()
    deadline = time.monotonic() + 30
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    scheduler.shutdown(wait=True)
    assert len(inbox.messages) == 1 and "1 new alert " in str(inbox.messages[0]["Subject"])
    assert stored_jobs(settings)["digest:daily"] > datetime.now(UTC)


def test_a_job_held_by_another_process_is_skipped(home: Path, smtp: tuple[Inbox, int],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    settings = configure(home, [{"name": "daily", "recipients": ["a@example.org"]}], port)
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(home / "config.yaml"))
    store = Store(settings.db_url)
    assert acquire_lock(store, "digest:daily", 600, owner="other-host:1")
    digest_job("daily")
    assert inbox.messages == []
    release_lock(store, "digest:daily", owner="other-host:1")
    digest_job("daily")
    assert len(inbox.messages) == 1
    # An expired lease (its holder crashed) is taken over.
    assert acquire_lock(store, "crawl:x", 60, owner="crashed")
    with store.session() as session:
        session.execute(text("UPDATE job_locks SET expires_at = :past WHERE name = 'crawl:x'"),
                        {"past": datetime.now(UTC) - timedelta(seconds=1)})
    assert acquire_lock(store, "crawl:x", 60, owner="me")
    store.close()


def test_only_one_of_many_racing_processes_gets_the_lock(settings: Settings) -> None:
    settings.ensure_dirs()
    store = Store(settings.db_url)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def contend(owner: str) -> None:
        barrier.wait()
        results.append(acquire_lock(store, "digest:race", 600, owner=owner))

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    store.close()


def test_a_crawl_that_cannot_run_is_reported_as_failing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = configure(home, [])
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(home / "config.yaml"))
    crawl_job("no-such-source")
    store = Store(settings.db_url)
    with store.session() as session:
        run = session.scalars(select(CrawlRun)).one()
    assert run.health == "failing" and "unknown source" in run.reason
    store.close()


def test_sigterm_stops_the_service_cleanly(home: Path) -> None:
    configure(home, [{"name": "daily", "time": "06:00", "timezone": "Europe/Berlin"}])
    child = subprocess.Popen([sys.executable, "-m", "loophole.cli", "run"], cwd=ROOT, env=cli_env(home),
                             stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    for line in iter(child.stderr.readline, ""):
        if "scheduler started" in line:
            break
    else:
        pytest.fail("the service never started")
    child.send_signal(signal.SIGTERM)
    _, rest = child.communicate(timeout=60)
    assert child.returncode == 0, rest
    assert "shutting down" in rest
    store = Store(load_settings().db_url)
    with store.session() as session:
        jobs = set(session.scalars(text("SELECT id FROM apscheduler_jobs")))
    assert {"digest:daily", "crawl:ccgp"} <= jobs
    store.close()
