"""SIGKILL during a real crawl: on restart every notice is stored exactly once, none is missed,
and the database and the vector index hold the same passages.

A loopback portal with CCGP's list format (newest first, ``index.htm``, ``index_1.htm``, ...)
is crawled by ``loophole crawl ccgp`` in a subprocess that is killed as soon as a notice of the
first list page is stored, i.e. while older notices further down the list are still unfetched.
That is the moment that matters: the incremental walk stops at the first list page holding a
known notice, which is only safe when everything older was stored by a run that finished.

Two rounds: a first crawl killed twice and then let finish; then new notices are published
(pushing the old ones down the list) and the next crawl is killed once more before a restart.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ground.config import load_settings
from index.chunking import chunk_document
from index.snapshots import content_hash
from index.store import Chunk, Document, Store
from tests.conftest import ROOT, cli_env
from tests.crash_support import finished_urls, index_ids
from tests.crawl_mirror import Mirror, Reply, fast_config, serve_mirror

PER_PAGE = 6
LIST = "/cggg/zygg/index{suffix}.htm"
SLOW_LIST_SECONDS = 0.4   # list pages after the first: their notices come after the first page's

pytestmark = pytest.mark.slow


def notice_path(n: int) -> str:
    return f"/cggg/zygg/gkzb/202611/t20261101_{700000 + n}.htm"


def notice_page(n: int) -> bytes:
    return (f"<html><head><meta charset='utf-8'><title>沅州市第{n}中学办公家具采购公告</title></head><body>"
            f"<div class='vF_detail_header'><h2>沅州市第{n}中学办公家具采购公告</h2></div>"
            f"<div class='vF_detail_content'><p>项目编号：BG-{n}。采购人：沅州市第{n}中学。预算金额：{n}.5万元。</p>"
            f"<p>采购办公桌椅{n}0套，木质材料，交货期三十天，质保三年。供应商资格要求：具有独立承担民事责任的能力。</p>"
            "</div></body></html>").encode()


class Portal(Mirror):
    """Notices newest first, PER_PAGE to a list page; ``publish`` puts new ones on top."""

    def __init__(self) -> None:
        super().__init__()
        self.newest_first: list[int] = []
        for page in range(40):
            self.routes[LIST.format(suffix=f"_{page}" if page else "")] = self._list(page)

    def publish(self, numbers: range) -> None:
        for n in numbers:
            self.files[notice_path(n)] = notice_page(n)
        self.newest_first = list(reversed(numbers)) + self.newest_first

    def page_of(self, n: int) -> int:
        return self.newest_first.index(n) // PER_PAGE

    def _list(self, page: int) -> Callable[[dict, bytes], Reply]:
        def answer(_query: dict, _body: bytes) -> Reply:
            pages = -(-len(self.newest_first) // PER_PAGE)
            shown = self.newest_first[page * PER_PAGE:(page + 1) * PER_PAGE]
            if page >= pages:
                return 404, {}, b""
            if page:
                time.sleep(SLOW_LIST_SECONDS)
            items = "".join(f'<li><a href=".{notice_path(n).removeprefix("/cggg/zygg")}">公告{n}</a></li>' for n in shown)
            body = (f"<html><head><meta charset='utf-8'><title>中央公告</title></head><body>"
                    f"<p>当前位置：首页 » 政采公告 » 中央公告（第{page + 1}页，共{pages}页），按发布时间排列，最新的在前。</p>"
                    f"<ul class='c_list_bid'>{items}</ul>"
                    f"<script>Pager({{size:{pages}, current:{page}, prefix:'index',suffix:'htm'}});</script>"
                    "</body></html>")
            return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode()
        return answer


def _stored(home: Path) -> set[str]:
    return finished_urls(home / "loophole.db")


def _crawl(portal: Portal, home: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loophole.cli", "crawl", "ccgp", "--base-url", portal.base_url],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=cli_env(home, LOOPHOLE_CONFIG=str(config), PYTHONPATH=str(ROOT)))


def _crawl_and_kill(portal: Portal, home: Path, config: Path, newest: list[int]) -> set[str]:
    """Kill the crawl once one more of ``newest`` (notices on the first list page) is stored."""
    targets = {portal.base_url + notice_path(n) for n in newest}
    before = _stored(home) & targets
    with _crawl(portal, home, config) as proc:
        deadline = time.monotonic() + 300
        while not (_stored(home) & targets) - before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    return _stored(home)


def _crawl_to_the_end(portal: Portal, home: Path, config: Path) -> None:
    with _crawl(portal, home, config) as proc:
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]


@pytest.fixture
def portal() -> Iterator[Portal]:
    with serve_mirror(Portal()) as mirror:
        yield mirror  # type: ignore[misc]


def _assert_whole(home: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every published notice stored once and completely; the vector index holds exactly its passages."""
    monkeypatch.setenv("LOOPHOLE_HOME", str(home))
    settings = load_settings()
    store = Store(settings.db_url)
    with store.session() as session:
        docs = {doc.url.removeprefix(portal.base_url): doc for doc in session.scalars(select(Document))}
        missing = sorted(set(portal.files) - set(docs))
        assert not missing, f"{len(missing)} notices never stored, e.g. {missing[:3]}"
        assert set(docs) == set(portal.files)                            # nothing extra (urls are unique)
        for path, doc in docs.items():
            assert doc.sha256 == content_hash(portal.files[path])         # every notice finished
            chunks = session.scalars(select(Chunk.text).where(Chunk.doc_id == doc.id).order_by(Chunk.seq)).all()
            assert list(chunks) == chunk_document(doc.title, doc.text)    # one set of passages, complete
        chunk_ids = set(session.scalars(select(Chunk.id)))
        assert session.scalar(select(func.count()).select_from(Chunk)) == len(chunk_ids)
    store.close()
    ids = index_ids(settings)
    assert len(ids) == len(set(ids)) and set(ids) == chunk_ids            # index and store agree


def test_sigkill_mid_crawl_misses_and_duplicates_nothing(portal: Portal, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    config = fast_config(tmp_path, concurrent_requests_per_domain=4, obey_robots=False)
    portal.publish(range(0, 5 * PER_PAGE))
    first_page = portal.newest_first[:PER_PAGE]

    for _ in range(2):
        progress = _crawl_and_kill(portal, home, config, first_page)
        assert len(progress) < len(portal.files), "the kill should land before the end"
    _crawl_to_the_end(portal, home, config)
    _assert_whole(home, portal, monkeypatch)

    portal.publish(range(100, 100 + 2 * PER_PAGE + 3))   # the old notices move down the list
    progress = _crawl_and_kill(portal, home, config, portal.newest_first[:PER_PAGE])
    assert len(progress) < len(portal.files), "the kill should land before the end"
    _crawl_to_the_end(portal, home, config)
    _assert_whole(home, portal, monkeypatch)
