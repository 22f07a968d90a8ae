"""A real crawl of a misbehaving loopback web: each bad answer is logged, the good pages arrive.

One subprocess crawl (Scrapy allows one reactor per process) of tests/hostile_web.py with the
project's own settings and middlewares, each page extracted as the ingest chain does
(tests/hostile_crawl.py); the assertions read its log, its stats and what was extracted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, cli_env
from tests.hostile_web import GOOD_TITLES, TRUNCATED_TEXT, HostileServer, base_url, serve_hostile

TIMEOUT = 2


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HostileServer, HostileServer]]:
    """The hostile web on 127.0.0.1 and an "intranet" host on 127.0.0.2 that must stay unreached."""
    with serve_hostile("127.0.0.2") as private, \
            serve_hostile("127.0.0.1", hang_seconds=TIMEOUT * 3, private_port=private.server_address[1]) as public:
        yield public, private


def _write_config(home: Path, url: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    sources = {"sources": [
        {"id": "hostile", "kind": "vendor", "spider": "site", "base_url": url, "start": ["/"],
         # The private targets are listed as allowed domains, so only the private-address rule refuses them.
         "allowed_domains": ["127.0.0.2", "169.254.169.254", "10.255.255.1", "localhost"]},
        {"id": "intranet", "kind": "vendor", "spider": "site", "base_url": url, "start": ["/private-links.html"],
         "allowed_domains": ["127.0.0.2"], "allow_private": True},
    ]}
    (home / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
    config = {"sources_file": str(home / "sources.yaml"),
              "crawl": {"download_delay": 0, "concurrent_requests_per_domain": 16, "timeout_seconds": TIMEOUT,
                        "retry_times": 0, "max_page_bytes": 1024 * 1024, "obey_robots": False, "max_depth": 4,
                        "max_requests": 200}}
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def crawl(servers: tuple[HostileServer, HostileServer], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    public, _ = servers
    home = tmp_path_factory.mktemp("hostile-home")
    config = _write_config(home, base_url(public))
    done = subprocess.run([sys.executable, "-m", "tests.hostile_crawl", base_url(public), str(home)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=cli_env(home, LOOPHOLE_CONFIG=str(config), PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [json.loads(line) for line in (home / "pages.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = {row["url"].split("/", 3)[3]: row for row in rows if row["status"] == "stored"}
    return {"log": done.stderr, "stats": json.loads((home / "stats.json").read_text()), "docs": docs, "rows": rows}


pytestmark = pytest.mark.slow


def _stored(crawl: dict[str, Any], path: str) -> dict[str, Any] | None:
    return crawl["docs"].get(path.lstrip("/"))


def test_good_pages_arrive_despite_the_rest(crawl: dict[str, Any]) -> None:
    for n, title in GOOD_TITLES.items():
        doc = _stored(crawl, f"/good/{n}.html")
        assert doc is not None and doc["title"] == title and "采购需求" in doc["text"]


@pytest.mark.parametrize("path,encoding", [("/malformed.html", None), ("/nested.html", None),
                                           ("/gbk-undeclared.html", "gb18030"), ("/wrong-charset.html", "gb18030")])
def test_broken_markup_and_charsets_are_read(crawl: dict[str, Any], path: str, encoding: str | None) -> None:
    doc = _stored(crawl, path)
    assert doc is not None and "沅州市" in doc["title"] and "采购需求" in doc["text"]
    if encoding:
        assert doc["encoding"] == encoding


@pytest.mark.parametrize("path,log_line", [
    ("/binary.html", "binary content served as a page"),
    ("/huge.html", "larger than download max size"),
    ("/huge-chunked.html", "larger than download max size"),
    ("/gzip-bomb.html", "exceeded DOWNLOAD_MAXSIZE"),
    ("/slow.html", "took longer than 2.0 seconds"),
    ("/trickle.html", "took longer than 2.0 seconds"),
    ("/reset.html", "reset.html"),
    ("/truncated.html", "truncated.html"),
    ("/offsite-redirect", "refused off-site redirect from"),
])
def test_each_bad_answer_is_logged_and_not_stored(crawl: dict[str, Any], path: str, log_line: str) -> None:
    assert _stored(crawl, path) is None
    lines = [line for line in crawl["log"].splitlines() if path.split("?")[0] in line or log_line in line]
    assert any(log_line in line for line in lines), f"no log line with {log_line!r} for {path}"
    assert not any(TRUNCATED_TEXT in doc["title"] for doc in crawl["docs"].values())


def test_redirect_loop_ends(crawl: dict[str, Any]) -> None:
    assert _stored(crawl, "/redirect-loop/a") is None
    assert "refused redirect loop at http://127.0.0.1" in crawl["log"]


def test_traps_end_at_the_depth_cap(crawl: dict[str, Any]) -> None:
    calendar = [path for path in crawl["docs"] if path.startswith("calendar")]
    listing = [path for path in crawl["docs"] if path.startswith("list")]
    assert 1 <= len(calendar) <= 4 and 1 <= len(listing) <= 4
    assert crawl["stats"]["hostile"]["depth/request_ignored_count"] >= 2
    assert "depth cap 4 reached" in crawl["log"]


def test_private_addresses_only_for_a_source_that_allows_them(
        crawl: dict[str, Any], servers: tuple[HostileServer, HostileServer]) -> None:
    _, private = servers
    assert private.hits == ["/secret.html"]          # once: the intranet source, never the hostile one
    hostile = crawl["stats"]["hostile"]
    assert hostile["safety/private_refused"] >= 3    # 127.0.0.2, 169.254.169.254, 10.255.255.1 (+ localhost)
    assert "refused http://169.254.169.254/latest/meta-data/: private address" in crawl["log"]
    assert crawl["stats"]["intranet"].get("safety/private_refused", 0) == 0


def test_crawl_finished_normally(crawl: dict[str, Any]) -> None:
    for stats in crawl["stats"].values():
        assert stats["finish_reason"] == "finished"
        assert stats["item_scraped_count"] >= 1
