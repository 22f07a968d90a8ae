"""Scraped text can never execute in the digest: rendered in real Chromium and checked.

Hostile titles, sentences, URLs, buyers and entity names (script, event handlers, javascript:
URLs, CSS, SVG, iframes, meta refresh, attribute breakouts) go through the real digest
template. The page is rendered twice: as sent (with its Content-Security-Policy) and with the
CSP removed, so that escaping alone is shown to suffice. Each payload would set a window flag,
open a dialog or fetch a beacon URL if it ran; none may.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.dedup import assign_groups
from alerts.digest import collect, render
from ground.config import BrowserSettings, Settings
from index.store import Alert, Document, Store

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's Chromium is missing")]

BEACON = "http://127.0.0.1:9/beacon"
PAYLOADS = [
    "<script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "<svg onload=\"window.__pwned='svg'\"><script>window.__pwned='svg-script'</script></svg>",
    "<svg><animate onbegin=\"window.__pwned='animate'\" attributeName=x dur=1s>",
    "<a href=\"javascript:window.__pwned='link'\">click</a>",
    "<iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:window.__pwned='refresh'\">",
    f"<style>body{{background:url('{BEACON}/css')}}</style><div style=\"background:url('{BEACON}/style')\">x</div>",
    "<body onload=\"alert('body')\"><details open ontoggle=\"alert('details')\">",
    "\"><script>alert('breakout')</script>",
    "'><img src=x onerror=alert('single')>",
]
URLS = [
    "javascript:window.__pwned='url'",
    " JaVaScRiPt:window.__pwned='url2'",
    "data:text/html,<script>window.__pwned='data'</script>",
    "http://127.0.0.1/x\" onmouseover=\"window.__pwned='href-quote'",
    "http://127.0.0.1/x'><script>window.__pwned='href-script'</script>",
]


def _hostile_store(settings: Settings) -> Store:
    settings.ensure_dirs()
    store = Store(settings.db_url)
    with store.session() as session:
        for n, payload in enumerate(PAYLOADS + URLS):
            url = URLS[n - len(PAYLOADS)] if n >= len(PAYLOADS) else f"http://127.0.0.1/{n}?q={payload}"
            doc = Document(url=url, sha256=f"{n:064x}", title=f"标题{n} {payload}", text="", kind="procurement-notice",
                           fields={"buyer": payload}, entities=[{"name": payload, "type": "us-cloud"}])
            session.add(doc)
            session.flush()
            session.add(Alert(doc_id=doc.id, pattern_id="gpu-cloud-rental", score=0.9, sentence=payload))
    return store


def _render_in_chromium(html: str, tmp_path: Path, name: str) -> dict:
    from playwright.sync_api import sync_playwright

    path = tmp_path / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    browser_settings = BrowserSettings()
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_settings.executable_path, args=browser_settings.args)
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.route("**/*", lambda route: (requests.append(route.request.url), route.continue_()
                                          if route.request.url.startswith("file:") else route.abort()))
        page.goto(path.as_uri())
        page.wait_for_timeout(300)
        for link in page.locator("a").all():
            link.hover()
        hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
        flag = page.evaluate("() => window.__pwned || null")
        text = page.inner_text("body")
        browser.close()
    return {"flag": flag, "dialogs": dialogs, "requests": requests, "hrefs": hrefs, "text": text}


@pytest.mark.parametrize("with_csp", [True, False], ids=["as-sent", "csp-removed"])
def test_no_payload_executes_in_the_digest(settings: Settings, tmp_path: Path, with_csp: bool) -> None:
    store = _hostile_store(settings)
    assign_groups(store)
    sub = settings.effective_subscriptions()[0]
    with store.session() as session:
        digest = collect(session, sub, {"gpu-cloud-rental": "GPU cloud rental"}, "email", [], None,
                         datetime.now(UTC))
    html, _ = render(digest)
    store.close()
    if not with_csp:
        html = re.sub(r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", html)
        assert "Content-Security-Policy" not in html
    seen = _render_in_chromium(html, tmp_path, "digest-csp" if with_csp else "digest-nocsp")
    assert seen["flag"] is None
    assert seen["dialogs"] == []
    assert [url for url in seen["requests"] if not url.startswith("file:")] == []
    assert all(href.startswith(("http://", "https://")) for href in seen["hrefs"]), seen["hrefs"]
    for payload in PAYLOADS:                        # shown as text, not dropped
        assert payload in seen["text"]


def test_the_harness_catches_an_unescaped_payload(tmp_path: Path) -> None:
    """Control: the same checks fail on raw markup, so their passing above means something."""
    seen = _render_in_chromium(f"<html><body>{PAYLOADS[1]}{PAYLOADS[7]}<script>alert('x')</script></body></html>",
                               tmp_path, "control")
    assert seen["flag"] == "img" and seen["dialogs"] == ["x"]
    assert any(url.startswith(BEACON) for url in seen["requests"])
