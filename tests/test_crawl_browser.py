"""A JavaScript portal through real Chromium: the rendered notice is stored with a full-page
screenshot, and the evidence bundle carries it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

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
