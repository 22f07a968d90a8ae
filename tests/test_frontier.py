"""Two crawler processes share one Redis frontier on a 2,000-page loopback site.

One of them is stopped mid-crawl and restarted: with SIGTERM (drain) no page is fetched twice
and none is missed; with SIGKILL none is missed and only what it held in flight is fetched again.
The crawlers are the real ``scrapy crawl site`` on the real Redis; the site counts every GET.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from crawlers.frontier import FrontierKeys
from ground.config import Settings
from loophole.webserver import LoopbackHTTPServer, serving
from tests.conftest import ROOT, cli_env
from tests.services import REDIS_URL

LISTS, PER_LIST = 20, 99          # 20 list pages + 1,980 detail pages = 2,000 pages
SOURCE = "loadtest"
NOTICE = "项目编号：LT-2026-001。采购人：某市公安局。预算金额：86.00万元。采购需求：视频分析服务器一批，详见附件。" * 8
MAX_HELD = 64                     # generous bound on what one worker holds in flight (16 + scraper)


class _CountingSite(BaseHTTPRequestHandler):
    counts: Counter[str]
    lock: threading.Lock

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.lock:
            self.counts[self.path] += 1
        if self.path.startswith("/lists/"):
            n = int(self.path.split("/")[-1].split(".")[0])
            links = "".join(f'<li><a href="/p/{n}-{m}.html">公告 {n}-{m}</a></li>' for m in range(PER_LIST))
            body = f"<html><head><title>列表 {n}</title></head><body><ul>{links}</ul></body></html>"
        else:
            body = f"<html><head><title>{self.path}</title></head><body><h1>公告 {self.path}</h1><p>{NOTICE}</p></body></html>"
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def all_pages() -> set[str]:
    return {f"/lists/{n}.html" for n in range(LISTS)} | {f"/p/{n}-{m}.html" for n in range(LISTS)
                                                          for m in range(PER_LIST)}


@pytest.fixture
def counting_site() -> Iterator[tuple[str, Counter[str]]]:
    counts: Counter[str] = Counter()
    handler = type("Handler", (_CountingSite,), {"counts": counts, "lock": threading.Lock()})
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    with serving(server, "counting-site"):
        yield f"http://127.0.0.1:{server.server_address[1]}", counts


@pytest.fixture
def worker_env(tmp_path: Path, redis_prefix: str) -> dict[str, str]:
    sources = {"sources": [{"id": SOURCE, "kind": "vendor", "spider": "site", "base_url": "http://loadtest.invalid",
                            "start": [f"/lists/{n}.html" for n in range(LISTS)], "follow": ["/p/"]}]}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    config = {"sources_file": str(tmp_path / "sources.yaml"),
              "crawl": {"frontier": "redis", "redis_url": REDIS_URL, "frontier_prefix": redis_prefix,
                        "frontier_heartbeat_seconds": 2, "download_delay": 0, "obey_robots": False,
                        "concurrent_requests_per_domain": 8}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return cli_env(tmp_path / "home", LOOPHOLE_CONFIG=str(tmp_path / "config.yaml"), PYTHONPATH=str(ROOT))


def start_worker(env: dict[str, str], base_url: str, log: Path) -> subprocess.Popen:
    # No item pipeline: this measures the frontier, not embedding; no AutoThrottle on loopback.
    command = [sys.executable, "-m", "scrapy", "crawl", "site", "-a", f"source={SOURCE}", "-a", f"base_url={base_url}",
               "-s", "ITEM_PIPELINES={}", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO"]
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(0.05)


def dequeued(log: Path) -> int:
    found = re.findall(r"'scheduler/dequeued/redis': (\d+)", log.read_text(encoding="utf-8", errors="replace"))
    return int(found[-1]) if found else 0


def crawl_with_one_stopped(tmp_path: Path, env: dict[str, str], base_url: str, counts: Counter[str],
                           stop: signal.Signals) -> list[Path]:
    logs = [tmp_path / name for name in ("a.log", "b.log", "a2.log")]
    processes = [start_worker(env, base_url, logs[0]), start_worker(env, base_url, logs[1])]
    try:
        wait_for(lambda: sum(counts.values()) >= 500, timeout=90)
        processes[0].send_signal(stop)
        assert processes[0].wait(timeout=30) in (0, -signal.SIGKILL)
        processes.append(start_worker(env, base_url, logs[2]))
        for process, log in zip(processes[1:], logs[1:], strict=True):
            assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return logs


def assert_frontier_finished(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = FrontierKeys(f"{prefix}:{SOURCE}", "")
    assert client.zcard(keys.queue) == 0
    assert client.scard(keys.owners) == 0
    assert not client.exists(keys.dupefilter), "a finished crawl clears its duplicate filter"
    client.close()


@pytest.mark.slow
def test_drained_worker_restarts_nothing_fetched_twice_nothing_missed(
        tmp_path: Path, worker_env: dict[str, str], counting_site: tuple[str, Counter[str]], redis_prefix: str) -> None:
    base_url, counts = counting_site
    logs = crawl_with_one_stopped(tmp_path, worker_env, base_url, counts, signal.SIGTERM)
    assert set(counts) == all_pages(), f"missed {len(all_pages() - set(counts))}, extra {set(counts) - all_pages()}"
    assert [path for path, n in counts.items() if n > 1] == []
    shares = [dequeued(log) for log in logs]
    assert all(share > 0 for share in shares), shares  # all three processes took part
    assert sum(shares) == len(all_pages())
    assert_frontier_finished(redis_prefix)


@pytest.mark.slow
def test_killed_worker_loses_nothing(tmp_path: Path, worker_env: dict[str, str],
                                     counting_site: tuple[str, Counter[str]], redis_prefix: str) -> None:
    base_url, counts = counting_site
    crawl_with_one_stopped(tmp_path, worker_env, base_url, counts, signal.SIGKILL)
    assert set(counts) == all_pages(), f"missed {len(all_pages() - set(counts))}"
    refetched = sum(n - 1 for n in counts.values())
    assert refetched <= MAX_HELD, refetched  # only what the killed worker held in flight


def test_embedded_default_needs_no_redis() -> None:
    from crawlers.frontier import frontier_settings

    assert frontier_settings(Settings()) == {}
    redis_settings = frontier_settings(Settings.model_validate({"crawl": {"frontier": "redis"}}))
    assert redis_settings["SCHEDULER"] == "crawlers.frontier.ReliableScheduler"


def test_queueing_a_request_does_not_open_the_store(home: Path, settings: Settings) -> None:
    """The Redis frontier queues ``Request.to_dict``, which looks up the callback among every
    member of the spider: that must not open (and so migrate) the database. Workers starting
    together on a new SQLite file raced doing it ("table crawl_runs already exists")."""
    from scrapy.utils.test import get_crawler

    from crawlers.configured import SETTINGS_KEY
    from crawlers.spiders.registry import spider_class
    from ground.sources import load_sources

    cls = spider_class(load_sources(settings.sources_file)["ccgp"])
    spider = cls.from_crawler(get_crawler(cls, {SETTINGS_KEY: settings}))
    spider.list_request(spider.url("/cggg/zygg/index.htm")).to_dict(spider=spider)
    assert spider._store is None
    assert not list(home.rglob("*.db*"))


SMALL_DETAILS = 12


class _SmallSite(BaseHTTPRequestHandler):
    """One list of 12 notices; the list is held back until both workers are up (``release``)."""

    counts: Counter[str]
    lock: threading.Lock
    release: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.lock:
            self.counts[self.path] += 1
        if self.path == "/list.html":
            self.release.wait(60)
            links = "".join(f'<li><a href="/p/{m}.html">公告 {m}</a></li>' for m in range(SMALL_DETAILS))
            body = f"<html><head><title>列表</title></head><body><ul>{links}</ul></body></html>"
        else:
            body = f"<html><head><title>{self.path}</title></head><body><h1>公告</h1><p>{NOTICE}</p></body></html>"
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_second_worker_gets_work_on_a_small_site(tmp_path: Path, redis_prefix: str) -> None:
    """Before: the worker that parsed the list took every notice on it into its own downloader queue,
    to be fetched one per download delay, and the second worker waited idle for the whole crawl."""
    counts: Counter[str] = Counter()
    release = threading.Event()
    handler = type("Handler", (_SmallSite,), {"counts": counts, "lock": threading.Lock(), "release": release})
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    sources = {"sources": [{"id": SOURCE, "kind": "vendor", "spider": "site", "base_url": "http://small.invalid",
                            "start": ["/list.html"], "follow": ["/p/"]}]}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    config = {"sources_file": str(tmp_path / "sources.yaml"),
              "crawl": {"frontier": "redis", "redis_url": REDIS_URL, "frontier_prefix": redis_prefix,
                        "download_delay": 0.4, "obey_robots": False}}   # polite: one request at a time per host
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = cli_env(tmp_path / "home", LOOPHOLE_CONFIG=str(tmp_path / "config.yaml"), PYTHONPATH=str(ROOT))
    client = redis.Redis.from_url(REDIS_URL)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with serving(server, "small-site"):
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        workers = [start_worker(env, base_url, log) for log in logs]
        try:
            wait_for(lambda: len(list(client.scan_iter(match=f"{redis_prefix}:{SOURCE}:alive:*"))) == 2, timeout=90)
            release.set()
            for worker, log in zip(workers, logs, strict=True):
                assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            release.set()
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    client.close()
    assert sum(counts.values()) == SMALL_DETAILS + 1 and max(counts.values()) == 1   # each page once
    shares = sorted(dequeued(log) for log in logs)
    assert sum(shares) == SMALL_DETAILS + 1
    assert shares[0] >= SMALL_DETAILS // 4, shares   # both took part (each about half)
