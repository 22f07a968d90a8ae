"""seeds/sources.yaml: the shipped file is valid, every source is a Scrapy spider, and a bad
entry is reported with the file, the source and the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawlers.configured import SETTINGS_KEY, MissingSettings
from crawlers.spiders.base import spider_options
from crawlers.spiders.ccgp import CcgpOptions, CcgpSpider
from crawlers.spiders.registry import SPIDERS, check_sources, spider_class
from ground.config import SEEDS_DIR, ConfigError, Settings
from ground.sources import PROVINCES, load_sources, seed_urls
from loophole.cli import app
from tests.conftest import ROOT, cli_env

SHIPPED = SEEDS_DIR / "sources.yaml"


def test_shipped_sources_cover_every_kind_and_family() -> None:
    sources = load_sources(SHIPPED)
    assert {s.kind for s in sources.values()} == {"procurement", "vendor", "marketplace", "reseller"} | (
        {"news"} & {s.kind for s in sources.values()})
    assert {s.spider for s in sources.values()} == set(SPIDERS)
    ccgp_local = sources["ccgp-local"]   # the all-local list, and every channel's own list, not a picked few
    assert ccgp_local.start == ["/cggg/dfgg/index.htm"] and ccgp_local.options["all_channels"] == "dfgg"
    assert sources["ccgp-search"].search is not None and sources["ccgp-search"].politeness.download_delay == 3
    for source in sources.values():
        cls = spider_class(source)
        assert cls.name == source.id and issubclass(cls, SPIDERS[source.spider])


def test_every_province_is_covered_by_at_least_two_shipped_sources() -> None:
    sources = list(load_sources(SHIPPED).values())
    for province in PROVINCES:
        covering = [s.id for s in sources if s.covers(province)]
        assert len(covering) >= 3 and "ggzy" in covering and "ccgp-local" in covering, province
    assert [s.id for s in sources if s.covers("江苏")] == ["ccgp-local", "ccgp-search", "ggzy", "jsggzy"]


def test_politeness_overrides_reach_the_spider_settings() -> None:
    """From the sources file of the Settings the crawl was given, not the developer's own config."""
    from scrapy.settings import Settings as ScrapySettings

    settings = ScrapySettings({"DOWNLOAD_DELAY": 1.0, SETTINGS_KEY: Settings(sources_file=SHIPPED)})
    spider_class(load_sources(SHIPPED)["ccgp-search"]).update_settings(settings)
    assert settings.getfloat("DOWNLOAD_DELAY") == 3


def test_a_crawler_without_settings_is_refused() -> None:
    """No Settings passed in: a clear error, not a quiet load from the environment."""
    from scrapy.settings import Settings as ScrapySettings

    with pytest.raises(MissingSettings, match="no LOOPHOLE_SETTINGS"):
        spider_class(load_sources(SHIPPED)["ccgp-search"]).update_settings(ScrapySettings())


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(("entry", "message"), [
    ("{id: a, kind: portal, spider: site, base_url: 'https://x.cn', start: [/]}", "field sources.0.kind (source id=a)"),
    ("{id: b, kind: vendor, spider: site, base_url: 'https://x.cn', start: [/], schedule: 'daily'}",
     ":2: field sources.0.schedule (source id=b): Value error, expected a 5-field cron"),
    ("{id: c, kind: vendor, spider: site, base_url: 'https://x.cn', start: [/], timezone: Mars/Olympus}",
     "unknown time zone"),
    ("{id: d, kind: vendor, spider: site, base_url: 'https://x.cn'}", "needs start paths, a search or a seeds_file"),
    ("{id: e, kind: vendor, spider: site, base_url: 'x.cn', start: [/]}", "field sources.0.base_url (source id=e)"),
    ("{id: f, kind: vendor, spider: site, base_url: 'https://x.cn', start: [/], politness: {}}", "field sources.0.politness"),
    ("{id: g, kind: procurement, spider: site, base_url: 'https://x.cn', start: [/], provinces: [江苏省]}",
     "field sources.0.provinces (source id=g): Value error, unknown province"),
])
def test_bad_entries_name_file_source_and_field(tmp_path: Path, entry: str, message: str) -> None:
    path = _write(tmp_path, f"sources:\n  - {entry}\n")
    with pytest.raises(ConfigError) as error:
        load_sources(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_seeds_file_and_duplicate_ids(tmp_path: Path) -> None:
    entry = "{id: r, kind: reseller, spider: site, base_url: 'https://x.cn', seeds_file: nope.txt}"
    with pytest.raises(ConfigError, match="source r field seeds_file: no such file nope.txt"):
        load_sources(_write(tmp_path, f"sources:\n  - {entry}\n"))
    twice = "{id: s, kind: vendor, spider: site, base_url: 'https://x.cn', start: [/]}"
    with pytest.raises(ConfigError, match="duplicate source ids: s"):
        load_sources(_write(tmp_path, f"sources:\n  - {twice}\n  - {twice}\n"))


def test_scrapy_list_and_loophole_sources_show_every_source(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", PYTHONPATH=str(ROOT))
    listed = subprocess.run([sys.executable, "-m", "scrapy", "list"], cwd=ROOT, capture_output=True, text=True,
                            env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    ids = set(load_sources(SHIPPED))
    assert ids <= set(listed.stdout.split())
    shown = subprocess.run([sys.executable, "-m", "loophole.cli", "sources", "--json"], cwd=ROOT, capture_output=True,
                           text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rows = {row["id"]: row for row in json.loads(shown.stdout)}
    assert set(rows) == ids and rows["ccgp"]["timezone"] == "Asia/Shanghai"


def test_reseller_seed_hosts_are_allowed_to_the_spider(settings: Settings) -> None:
    """The seeds name pages on many sites; the offsite check must not drop them."""
    source = load_sources(SHIPPED)["resellers"]
    seeds = seed_urls(SHIPPED, source)
    assert len(seeds) >= 10 and all(url.startswith(("http://", "https://")) for url in seeds)
    spider = spider_class(source)(config=settings)
    assert {"docs.idatariver.com", "www.openai-proxy.com", "example.invalid"} <= set(spider.allowed_domains)


def test_every_shipped_source_takes_its_spiders_options() -> None:
    check_sources(load_sources(SHIPPED).values())
    ccgp = spider_options(CcgpSpider, load_sources(SHIPPED)["ccgp-local"])
    assert isinstance(ccgp, CcgpOptions) and ccgp.all_channels == "dfgg" and ccgp.max_pages == 25


TYPO = """\
sources:
  - id: fine
    kind: vendor
    spider: site
    base_url: https://x.cn
    start: [/]
  - id: typo
    kind: procurement
    spider: ccgp
    base_url: https://y.cn
    start: [/]
    options:
      all_channels: dfgg
      max_pagez: 3
"""


def test_a_typo_in_a_spiders_options_names_file_line_and_source(tmp_path: Path) -> None:
    """Options are typed per spider: an unknown one is an error, not silently ignored."""
    path = _write(tmp_path, TYPO)
    with pytest.raises(ConfigError) as error:
        check_sources(load_sources(path).values())
    assert str(error.value) == f"{path}:14: field sources.1.options.max_pagez (source id=typo): " \
                               "Extra inputs are not permitted"


def test_a_mistyped_option_is_refused_before_any_crawl(tmp_path: Path, home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``loophole sources`` and ``loophole crawl`` check the options first and name the problem."""
    path = _write(tmp_path, TYPO.replace("max_pagez: 3", "max_pages: many"))
    (tmp_path / "config.yaml").write_text(f"sources_file: {path}\n", encoding="utf-8")
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(tmp_path / "config.yaml"))
    for command in (["sources"], ["crawl", "typo"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2
        assert f"{path}:14: field sources.1.options.max_pages (source id=typo): Input should be a valid integer" \
            in result.output
    assert not list(home.rglob("*.db*"))   # nothing was crawled, nor a store opened
