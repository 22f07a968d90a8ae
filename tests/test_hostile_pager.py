"""Hostile list pagination: a pager that never ends must not make the list walk endless.

One real crawl (``loophole crawl``, one subprocess) of three loopback lists whose notices are
all new, so the incremental stop never comes: a CCGP-style pager claiming a billion pages, a
calendar-style pager that always offers one page more than the one shown, and an Epoint JSON
API whose ``totalcount`` never runs out. Each walk ends at ``crawl.max_list_pages``, counted in
``lists/pager_clamped`` and said in the log. The notices 404, so nothing is ingested and the
crawl takes seconds. Then the list parsing itself: linear time on huge hostile pages.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from crawlers.spiders.ccgp import pager_size
from crawlers.spiders.epoint import DEFAULT_API
from crawlers.spiders.marketplace import split_outside_parentheses
from tests.crawl_mirror import Mirror, Reply, loophole, serve_mirror

MAX_LIST_PAGES = 4
MAX_DEPTH = 2  # below the walk's length: list pages do not deepen, their clamp bounds them
LIST_PAGE = re.compile(r"^/(endless|calendar)/index(?:_(\d+))?\.htm$")
HEADER = "<p>当前位置：首页 » 政采公告 » 公告列表，按发布时间排列，最新的在前，每页两条公告。</p>"


class EndlessPortal(Mirror):
    """Every list page exists and links two new notices; the pager always says there is more."""

    def reply(self, method: str, target: str, body: bytes) -> Reply:
        self.log.append((method, target))
        match = LIST_PAGE.match(target)
        if match:
            return self._list(match.group(1), int(match.group(2) or 0))
        if target == DEFAULT_API:
            return self._api(json.loads(body))
        return 404, {"Content-Type": "text/html"}, b"<html><body>not found</body></html>"

    def _list(self, kind: str, page: int) -> Reply:
        size = 999_999_999 if kind == "endless" else page + 2   # a calendar: always a "next month"
        links = "".join(f'<li><a href="./n/{kind}-{page}-{i}.htm">公告 {page}-{i}</a></li>' for i in range(2))
        html = (f"<html><head><meta charset='utf-8'><title>列表</title></head><body>{HEADER}"
                f"<ul class='c_list_bid'>{links}</ul><script>Pager({{size:{size}, current:{page}}});</script>"
                "</body></html>")
        return 200, {"Content-Type": "text/html; charset=utf-8"}, html.encode()

    def _api(self, request: dict[str, Any]) -> Reply:
        records = [{"titlenew": f"公告 {request['pn'] + i}", "linkurl": f"/jyxx/n/{request['pn'] + i}.html"}
                   for i in range(request["rn"])]
        answer = {"result": {"totalcount": 10**8, "records": records}}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def list_pages(self, prefix: str) -> list[str]:
        return [target for target in self.requested(prefix) if "/n/" not in target]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("pager-home")
    with serve_mirror(EndlessPortal()) as portal:
        sources = {"sources": [
            {"id": "endless", "kind": "procurement", "spider": "ccgp", "base_url": portal.base_url,
             "start": ["/endless/index.htm"], "options": {"max_pages": 10**6}},
            {"id": "calendar", "kind": "procurement", "spider": "ccgp", "base_url": portal.base_url,
             "start": ["/calendar/index.htm"], "options": {"max_pages": 10**6}},
            {"id": "endless-api", "kind": "procurement", "spider": "epoint", "base_url": portal.base_url,
             "search": {"terms": ["GPU"]}, "options": {"categories": ["003001001"], "rows": 2, "max_pages": 10**6}},
        ]}
        (home / "sources.yaml").write_text(yaml.safe_dump(sources), encoding="utf-8")
        config = home / "config.yaml"
        config.write_text(yaml.safe_dump({"sources_file": str(home / "sources.yaml"), "crawl": {
            "download_delay": 0, "obey_robots": False, "retry_times": 0, "max_list_pages": MAX_LIST_PAGES,
            "max_depth": MAX_DEPTH}}))
        done = loophole(["crawl", "endless", "calendar", "endless-api"], home, config, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        with sqlite3.connect(home / "loophole.db") as conn:
            runs = {source: json.loads(stats) for source, stats in conn.execute("SELECT source, stats FROM crawl_runs")}
        yield {"portal": portal, "log": done.stderr, "runs": runs}


@pytest.mark.parametrize("source,prefix,walks", [("endless", "/endless/", 1), ("calendar", "/calendar/", 1),
                                                 ("endless-api", DEFAULT_API, 2)])  # a category and a search
def test_endless_pager_is_clamped(crawl: dict[str, Any], source: str, prefix: str, walks: int) -> None:
    pages = crawl["portal"].list_pages(prefix)
    # the pages before the clamp, each once; on failure the run's stats and errors say why
    errors = [line for line in crawl["log"].splitlines() if " ERROR " in line]   # log records, not stats
    assert len(pages) == walks * MAX_LIST_PAGES, (errors[:6], len(pages), crawl["runs"].get(source))
    stats = crawl["runs"][source]
    assert stats["lists/pager_clamped"] == walks and stats["finish_reason"] == "finished"
    assert "depth/request_ignored_count" not in stats          # every notice link was requested
    assert f"{source}: list walk clamped at {MAX_LIST_PAGES} pages (crawl.max_list_pages)" in crawl["log"]


def test_a_clamped_walk_does_not_count_as_a_finished_one(crawl: dict[str, Any]) -> None:
    """The notices a clamped walk stored are not everything down the list: the next run must not
    stop at them (see SourceSpider.walk_stops_among)."""
    from crawlers.spiders.base import CUT_SHORT_STATS

    assert "lists/pager_clamped" in CUT_SHORT_STATS


@pytest.mark.parametrize("hostile", [
    "Pager({" * 200_000,                                     # 1.4 MB of openings, no closing brace
    "Pager({" + "size:1 " * 200_000,                         # endless arguments, no current
    "Pager({size:" + "9" * 200_000 + ", current:0})",        # a count no int should be made of
])
def test_pager_parsing_is_linear_on_huge_hostile_lists(hostile: str) -> None:
    started = time.perf_counter()
    found = pager_size(hostile + "<script>Pager({size:7, current:0});</script>")
    assert time.perf_counter() - started < 1.0               # was 26 s for 140 kB with the old pattern
    assert found in (1, 7)


def test_pager_size_reads_the_real_call() -> None:
    assert pager_size("<script>Pager({size:25, current:3, prefix:'index',suffix:'htm'});</script>") == 25
    assert pager_size("<script>Pager({current:3});</script>") is None
    assert pager_size("no pager here") is None


def test_listing_values_split_in_linear_time() -> None:
    """Marketplace list fields (regions, categories) are split at commas outside parentheses."""
    assert split_outside_parentheses("East US (Virginia, USA), West Europe; Asia (HK)") == [
        "East US (Virginia, USA)", " West Europe", " Asia (HK)"]
    started = time.perf_counter()
    assert len(split_outside_parentheses("," * 200_000)) == 200_001
    split_outside_parentheses("(" * 200_000 + "," * 200_000)
    assert time.perf_counter() - started < 1.0               # the old look-ahead pattern: minutes
