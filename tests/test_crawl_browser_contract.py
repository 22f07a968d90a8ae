"""crawlers/browser.py overrides scrapy-playwright's private ``_download_request``. A private
method may change in any release, so these checks fail loudly, without a browser and in
``make test``, when the installed scrapy-playwright is not the release the override was checked
against or when the method it overrides no longer has the shape the override relies on."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

import crawlers.browser
from crawlers.browser import PagePoolHandler
from tests.conftest import ROOT


def _pin() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [Requirement(spec) for spec in project["project"]["dependencies"]]
    return next(pin for pin in pins if pin.name == "scrapy-playwright")


def _checked_against() -> str:
    found = re.search(r"checked\s+against\s+(\d[\w.]*)", crawlers.browser.__doc__ or "")
    assert found, "crawlers/browser.py must say which scrapy-playwright release its override was checked against"
    return found.group(1)


def test_the_pin_admits_the_checked_release_and_no_other() -> None:
    checked, pin = _checked_against(), _pin()
    *head, last = checked.split(".")
    before, after = (".".join([*head, str(int(last) + step)]) for step in (-1, 1))
    assert pin.specifier.contains(checked)
    assert not pin.specifier.contains(before) and not pin.specifier.contains(after)


def test_the_installed_release_is_the_checked_one() -> None:
    assert version("scrapy-playwright") == _checked_against()


def test_the_overridden_method_keeps_its_signature() -> None:
    theirs = inspect.signature(ScrapyPlaywrightDownloadHandler._download_request)
    ours = inspect.signature(PagePoolHandler._download_request)
    assert [(p.name, p.kind, p.default) for p in theirs.parameters.values()] == \
        [(p.name, p.kind, p.default) for p in ours.parameters.values()]
    assert inspect.iscoroutinefunction(ScrapyPlaywrightDownloadHandler._download_request)


def test_the_handler_still_reads_the_meta_keys_the_page_pool_sets() -> None:
    source = inspect.getsource(ScrapyPlaywrightDownloadHandler)
    for key in ("playwright_page", "playwright_include_page"):
        assert f'request.meta.get("{key}")' in source, key
    assert 'page.unroute("**")' in source
