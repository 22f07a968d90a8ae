"""A JavaScript portal through real Chromium: the rendered notice is stored with a full-page
screenshot, and the evidence bundle carries it."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

from index.store import CrawlRun, Store
from loophole.webserver import serve_directory
from tests.conftest import DEMO_WEB
from tests.crawl_mirror import documents, fast_config, loophole

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")]


def test_rendered_notice_has_a_screenshot_in_its_evidence(tmp_path: Path) -> None:
    home, config = tmp_path / "home", fast_config(tmp_path)
    with serve_directory(DEMO_WEB) as base_url:
        completed = loophole(["crawl", "yuanjiang-portal", "--base-url", base_url, "--limit", "1"], home, config)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (doc,) = documents(home, config, "yuanjiang-portal")
    assert doc["fields"]["screenshot_sha256"]
    bundle = tmp_path / "bundle.zip"
    assert loophole(["evidence", str(doc["id"]), "--out", str(bundle)], home, config).returncode == 0
    with zipfile.ZipFile(bundle) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        shot = next(f for f in manifest["files"] if f["role"] == "screenshot")
        assert archive.read(shot["path"]).startswith(b"\x89PNG") and shot["render_mode"] == "screenshot"
        page = next(f for f in manifest["files"] if f["role"] == "page")
        assert page["render_mode"] == "browser"
        # In the WARC file the rendered DOM is a resource record (not dressed as the server's response).
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"))
                   for r in ArchiveIterator(io.BytesIO(archive.read("capture.warc.gz")))]
        assert records[1] == ("resource", page["url"]) and records[2][0] == "resource"
        assert records[2][1] == f"urn:loophole-watch:screenshot:{shot['url']}"
    assert loophole(["evidence", "--verify", str(bundle)], home, config).returncode == 0


def test_notices_share_a_few_browser_pages(tmp_path: Path) -> None:
    """crawlers/browser.py: Chromium pages are reused, not opened per request, and every notice
    still gets its own rendering and screenshot."""
    home, config = tmp_path / "home", fast_config(tmp_path)
    with serve_directory(DEMO_WEB) as base_url:
        completed = loophole(["crawl", "yuanjiang-portal", "--base-url", base_url], home, config)
    assert completed.returncode == 0, completed.stderr[-3000:]
    docs = documents(home, config, "yuanjiang-portal")
    assert len(docs) == 5 and len({d["title"] for d in docs}) == 5
    assert all(d["fields"]["screenshot_sha256"] for d in docs)
    store = Store(f"sqlite:///{home / 'loophole.db'}")
    with store.session() as session:
        stats = session.scalars(select(CrawlRun.stats)).one()
    store.close()
    # A list page and five notices through at most PLAYWRIGHT_MAX_PAGES_PER_CONTEXT (2) pages.
    assert stats["pages/fetched"] == 5 and stats["playwright/page_count"] <= 2
