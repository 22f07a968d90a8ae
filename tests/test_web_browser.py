"""The web app in real Chromium (Playwright): sign in, search, open a document, triage an alert.

The server is uvicorn on a loopback port in a thread, over a copy of the ingested dev corpus
plus a hostile page. Screenshots go to the test's tmp folder (docs/*.png are copies of them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Dialog, Page, expect, sync_playwright

from ground.config import BrowserSettings
from tests.conftest import DEV_CORPUS, needs
from tests.ports import free_port
from tests.web_support import HOSTILE_TITLE, WebHome, build_web_home
from web.app import create_app

pytestmark = [needs(DEV_CORPUS), needs(Path(BrowserSettings().executable_path)), pytest.mark.browser,
              pytest.mark.slow]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebHome]]:
    home = build_web_home(tmp_path_factory.mktemp("browser") / "home")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(home.settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", home
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_page(web: tuple[str, WebHome]) -> Iterator[Page]:
    settings = BrowserSettings()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=settings.executable_path, args=settings.args)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            browser.close()


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(f"{base}/search")
    expect(page).to_have_url(f"{base}/login")
    page.fill("input[name=token]", token)
    page.click("form.login button")
    expect(page).to_have_url(f"{base}/search")


def test_search_open_document_and_triage(web: tuple[str, WebHome], browser_page: Page, tmp_path: Path) -> None:
    base, home = web
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: _record(dialogs, dialog))
    sign_in(page, base, home.tokens["analyst"])

    page.fill("input[name=q]", "universities renting H100 GPUs in overseas cloud regions")
    page.click("form.search summary")
    page.select_option("select[name=kind]", "procurement-notice")
    page.click("form.search > button")
    results = page.locator("li.result")
    expect(results.first).to_be_visible()
    assert results.count() >= 5
    assert any("\u4e00" <= ch <= "\u9fff" for ch in page.locator("ol.results").inner_text())  # Chinese pages found
    assert set(page.locator("li.result .tag").all_inner_texts()) >= {"procurement-notice"}
    expect(page.locator("nav.views span.on")).to_have_text("Evidence first")
    page.screenshot(path=str(tmp_path / "search.png"), full_page=False)
    page.click("nav.views a")                                          # the switch keeps the query
    expect(page.locator("nav.views span.on")).to_have_text("Everything")
    assert "view=everything" in page.url and "kind=procurement-notice" in page.url
    page.locator("li.result a.like").first.click()
    expect(page.locator("p.like")).to_contain_text("More like")
    assert page.locator("li.result").count() >= 3

    page.go_back()
    page.locator("li.result a.title").first.click()
    expect(page.locator("article.document h1")).to_be_visible()
    expect(page.locator("aside")).to_contain_text("Patterns")
    page.screenshot(path=str(tmp_path / "document.png"), full_page=False)

    page.goto(f"{base}/alerts")
    first = page.locator("li.alert").first
    alert_id = first.get_attribute("id")
    first.locator("input[name=note]").fill("checked in the browser")
    first.locator("button.confirm").click()
    expect(page.locator(f"#{alert_id}")).to_have_count(0)            # gone from the "new" list
    page.goto(f"{base}/alerts?status=confirmed")
    confirmed = page.locator(f"#{alert_id}")
    expect(confirmed).to_contain_text("confirmed")
    expect(confirmed).to_contain_text("checked in the browser")
    page.screenshot(path=str(tmp_path / "alerts.png"), full_page=False)
    assert dialogs == []


def test_hostile_page_shows_as_text_in_every_view(web: tuple[str, WebHome], browser_page: Page) -> None:
    base, home = web
    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: _record(dialogs, dialog))
    views = ["/search?q=海康威视+Azure&source=hostile", f"/documents/{home.hostile_doc}", "/alerts?status=all",
             f"/documents/{home.hostile_doc}/saved"]
    for view in views:
        page.goto(base + view)
        assert page.locator("script").count() == 0, view
        if not view.endswith("/saved"):
            assert "<script>alert('title')</script>" in page.locator("main").inner_text(), view
            assert page.locator("main a[href^='javascript:']").count() == 0, view
    page.goto(f"{base}/documents/{home.hostile_doc}")
    expect(page.locator("article.document h1")).to_have_text(HOSTILE_TITLE)
    assert dialogs == []


def _record(dialogs: list[str], dialog: Dialog) -> None:
    dialogs.append(dialog.message)
    dialog.dismiss()
