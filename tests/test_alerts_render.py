"""The HTML digest in a real browser (Debian's Chromium through Playwright): the key content is
visible, the layout holds at mail-client width, and nothing from a hostile page executes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.dedup import assign_groups
from alerts.digest import collect, render
from ground.config import BrowserSettings, Settings, Subscription
from ground.sources import load_sources
from index.store import Store
from tests.alerts_helpers import SENTENCE, add_alert, add_crawl_run

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's Chromium is missing")]

HOSTILE_TITLE = "<script>window.__pwned='title'</script><img src=x onerror=\"window.__pwned='img'\">恶意标题"
HOSTILE_SENTENCE = "\"><svg onload=\"window.__pwned='svg'\"></svg>租用NVIDIA H100 GPU云算力。"
HOSTILE_URL = "javascript:window.__pwned='link'"


def digest_html(settings: Settings) -> str:
    settings.ensure_dirs()
    store = Store(settings.db_url)
    add_alert(store, "http://www.ccgp.gov.cn/cggg/dfgg/gkzb/202611/t20261101_100.htm")
    add_alert(store, "http://www.yuanjiang.gov.cn/province/notice/2026-018.html", source="yuanjiang-portal")
    add_alert(store, HOSTILE_URL, source="demo-marketplace", title=HOSTILE_TITLE, pattern="gpu-cloud-rental",
              sentence=HOSTILE_SENTENCE, text="前文<b>粗体</b>" + HOSTILE_SENTENCE + "<iframe src=x></iframe>后文", fields={})
    add_crawl_run(store, "ccgp")
    add_crawl_run(store, "yuanjiang-portal", health="degraded", reason="block page: 频繁访问 <script>x</script>")
    assign_groups(store)
    titles = {"gpu-cloud-rental": "GPU cloud rental", "police-us-tech-procurement": "Police buying US tech"}
    with store.session() as session:
        sources = load_sources(settings.sources_file)
        digest = collect(session, Subscription(name="researchers", timezone="Asia/Shanghai"), titles, "email",
                         [sources[name] for name in ("ccgp", "yuanjiang-portal")], "https://watch.example.org",
                         datetime(2026, 11, 20, 0, 0, tzinfo=UTC))
    store.close()
    return render(digest)[0]


def screenshot(html: str, path: Path) -> dict:
    """Render in Chromium with JavaScript on (as a careless client might) and report what happened."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BrowserSettings().args)
        page = browser.new_page(viewport={"width": 760, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.set_content(html, wait_until="load")
        page.wait_for_timeout(300)
        report = {
            "pwned": page.evaluate("window.__pwned"),
            "dialogs": dialogs,
            "text": page.inner_text("body"),
            "scripts": page.locator("script").count(),
            "injected": page.locator("img, svg, iframe").count(),
            "hrefs": page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))"),
            "width": page.evaluate("document.querySelector('table table').getBoundingClientRect().width"),
            "highlight": page.locator("span", has_text="用于人脸识别").first.evaluate(
                "e => getComputedStyle(e).backgroundColor"),
        }
        page.screenshot(path=str(path), full_page=True)
        browser.close()
    return report


def test_digest_renders_in_chromium_and_hostile_content_stays_text(settings: Settings, tmp_path: Path) -> None:
    shot = tmp_path / "digest.png"
    report = screenshot(digest_html(settings), shot)
    assert report["pwned"] is None and report["dialogs"] == []
    assert report["scripts"] == 0 and report["injected"] == 0
    assert all(href.startswith("http") for href in report["hrefs"])
    text = report["text"]
    for expected in ("Loophole Watch", "沅州市公安局", "CNY 8,600,000", SENTENCE, "Seen 2 times", "Crawl health",
                     "频繁访问 <script>x</script>", "<script>window.__pwned='title'</script>", "GPU cloud rental",
                     "2026-11-20 08:00 Asia/Shanghai", "saved copy"):
        assert expected in text, expected
    assert report["width"] <= 680
    assert report["highlight"] == "rgb(255, 232, 138)"   # the decisive sentence is highlighted
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == 760 and height >= 900
