"""SIGKILL during ingest and during an index save: on restart nothing is lost or duplicated,
and the database and the vector index hold the same passages.

The kills land at random moments (seeded, so a failure can be replayed): during ingest, a
short random delay after the run has completed at least one new page; during a save, at a
random moment of a loop that does nothing but save.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from ground.config import load_settings
from index.chunking import chunk_document
from index.patterns import load_library
from index.snapshots import content_hash
from index.store import Alert, Chunk, Detection, Document, Store
from index.vectors import VectorIndex
from tests.conftest import ROOT, cli_env
from tests.crash_support import finished_urls, index_ids
from tests.test_pipeline import positive_page

SEED = 20261122
PAGES = 40  # enough that two kills land mid-run even on a quiet machine (16 pages once finished first)


def _pages(folder: Path) -> dict[str, bytes]:
    """Half police notices that must alert, half office-supply notices that must not."""
    folder.mkdir()
    pages = {}
    for n in range(PAGES):
        if n % 2 == 0:
            body = positive_page(f"沅州市公安局第{n}批视频智能分析平台采购项目公开招标公告")
        else:
            body = (f"<html><head><meta charset='utf-8'><title>沅州市第{n}中学办公家具采购公告</title></head><body>"
                    f"<p>项目编号：BG-{n}。采购人：沅州市第{n}中学。预算金额：{n}.5万元。</p><p>采购办公桌椅{n}0套，"
                    "木质材料，交货期三十天，质保三年。供应商资格要求：具有独立承担民事责任的能力。</p></body></html>"
                    ).encode()
        (folder / f"page{n:02d}.html").write_bytes(body)
        pages[(folder / f"page{n:02d}.html").resolve().as_uri()] = body
    return pages


def _complete(db: Path) -> int:
    return len(finished_urls(db))


def _ingest_and_kill(folder: Path, home: Path, rng: random.Random) -> int:
    """Start an ingest, wait until it completes one more page, kill it a moment later."""
    before = _complete(home / "loophole.db")
    with subprocess.Popen([sys.executable, "-m", "loophole.cli", "ingest", str(folder)], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(home)) as proc:
        deadline = time.monotonic() + 300
        while _complete(home / "loophole.db") <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return _complete(home / "loophole.db")


@pytest.mark.slow
def test_sigkill_during_ingest_loses_and_duplicates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    pages = _pages(tmp_path / "pages")
    rng = random.Random(SEED)
    progress = [_ingest_and_kill(tmp_path / "pages", home, rng) for _ in range(2)]
    assert progress[-1] < PAGES, "the kills should land before the end"
    final = subprocess.run([sys.executable, "-m", "loophole.cli", "ingest", str(tmp_path / "pages")], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, env=cli_env(home))
    assert final.returncode == 0, final.stderr[-3000:]

    monkeypatch.setenv("LOOPHOLE_HOME", str(home))
    settings = load_settings()
    patterns = len(load_library(settings.pattern_files).patterns)
    store = Store(settings.db_url)
    with store.session() as session:
        docs = {doc.url: doc for doc in session.scalars(select(Document))}
        assert set(docs) == set(pages)                                  # nothing lost, nothing extra
        for url, doc in docs.items():
            assert doc.sha256 == content_hash(pages[url])                # every page finished
            chunks = session.scalars(select(Chunk.text).where(Chunk.doc_id == doc.id).order_by(Chunk.seq)).all()
            assert list(chunks) == chunk_document(doc.title, doc.text)   # one set of chunks, complete
            assert session.scalar(select(func.count()).where(Detection.doc_id == doc.id)) == patterns
        alerts = session.execute(select(Document.url, Alert.pattern_id).join(Document)).all()
        chunk_ids = set(session.scalars(select(Chunk.id)))
    store.close()
    assert len(alerts) == len(set(alerts))                                # no alert twice
    police = {url for url, pattern in alerts if pattern == "police-us-tech-procurement"}
    assert police == {url for url, body in pages.items() if b"meta charset=\"gb2312\"" in body}

    assert set(index_ids(settings)) == chunk_ids                          # index and store agree


SAVER = """
import sys, numpy as np
from pathlib import Path
from index.vectors import VectorIndex
rng = np.random.default_rng(0)
index = VectorIndex(64, "test-model")
index.add(np.arange(20000), rng.standard_normal((20000, 64)).astype("float32"))
directory = Path(sys.argv[1])
index.save(directory)
print("ready", flush=True)
n = 20000
while True:
    index.add(np.array([n]), rng.standard_normal((1, 64)).astype("float32"))
    n += 1
    index.save(directory)
"""


def test_sigkill_during_index_save_leaves_a_whole_index(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "index"
    for _ in range(4):
        with subprocess.Popen([sys.executable, "-c", SAVER, str(directory)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env=cli_env(tmp_path, PYTHONPATH=str(ROOT))) as proc:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        index = VectorIndex.load(directory, "test-model", 64)
        ids = index.ids()
        assert len(ids) >= 20000 and np.array_equal(np.sort(ids), np.arange(len(ids)))  # a whole saved state
        assert index.search(np.ones((1, 64), dtype=np.float32), 3)[1].min() >= 0


def test_damaged_index_file_is_rebuilt_from_the_store(settings, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from loophole.pipeline import Monitor, RawPage

    monitor = Monitor(settings)
    monitor.ingest(RawPage(url="http://127.0.0.1/a.htm", body=positive_page(), source="test"))
    monitor.close()
    index_file = next(settings.index_dir.glob("*.faiss"))
    index_file.write_bytes(index_file.read_bytes()[:100])               # torn by a disk fault
    monitor = Monitor(settings)
    with caplog.at_level("WARNING"):
        count = len(monitor.vectors)
    with monitor.store.session() as session:
        assert count == session.scalar(select(func.count()).select_from(Chunk)) > 0
    assert "unreadable" in caplog.text and "rebuilding from the store" in caplog.text
    monitor.close()
