"""One spider per configured source, so ``scrapy list`` shows every source and
``scrapy crawl SOURCE_ID`` works for sources that share a generic spider.

A source whose id is its spider's name (``ccgp``) uses that spider class directly. A source's
``options`` are checked against its spider's typed Options here, when its spider is chosen, so a
typo fails ``loophole sources``, ``loophole run`` and a crawl before anything is fetched.
"""

from __future__ import annotations

from collections.abc import Iterable

from scrapy.settings import BaseSettings
from scrapy.spiderloader import SpiderLoader

from crawlers.configured import SETTINGS_KEY
from crawlers.spiders.base import SourceSpider, spider_options
from crawlers.spiders.ccgp import CcgpSpider
from crawlers.spiders.discovery import DiscoverySpider
from crawlers.spiders.epoint import EpointSpider
from crawlers.spiders.ggzy import GgzySpider
from crawlers.spiders.js_portal import JsPortalSpider
from crawlers.spiders.marketplace import MarketplaceSpider
from crawlers.spiders.site import SiteSpider
from crawlers.spiders.zcy import ZcySpider
from ground.config import ConfigError, Settings
from ground.sources import Source, load_sources

SPIDERS: dict[str, type[SourceSpider]] = {
    cls.name: cls for cls in (CcgpSpider, DiscoverySpider, EpointSpider, GgzySpider, JsPortalSpider, MarketplaceSpider,
                              SiteSpider, ZcySpider)
}


def spider_class(source: Source) -> type[SourceSpider]:
    """The spider class bound to ``source`` (a subclass named after it when ids differ); ConfigError
    for an unknown spider or options that spider does not take (naming the file, line and source)."""
    try:
        base = SPIDERS[source.spider]
    except KeyError as exc:
        known = ", ".join(SPIDERS)
        raise ConfigError(f"source {source.id}: unknown spider {source.spider!r}; known: {known}") from exc
    spider_options(base, source)
    if source.id == base.name:
        return base
    name = "".join(part.title() for part in source.id.replace("-", "_").split("_")) + "Spider"
    return type(name, (base,), {"name": source.id, "source_id": source.id, "__module__": __name__})


def check_sources(sources: Iterable[Source]) -> None:
    """Every source's spider exists and takes its options; one ConfigError listing every problem."""
    problems = []
    for source in sources:
        try:
            spider_class(source)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def bound_spiders(sources: Iterable[Source]) -> dict[str, type[SourceSpider]]:
    """A spider class for each source that shares a generic spider, by source id."""
    return {source.id: spider_class(source) for source in sources
            if source.spider in SPIDERS and source.id != source.spider}


class SourceSpiderLoader(SpiderLoader):
    """Scrapy's spider loader, plus one spider per source of the crawl's own Settings
    (``scrapy list``, ``scrapy crawl SOURCE_ID``). Without Settings only the spider classes are
    listed; a sources file with errors too (``loophole sources`` reports them)."""

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        config = settings.get(SETTINGS_KEY)
        if isinstance(config, Settings):
            self._spiders.update(self._per_source(config))

    @staticmethod
    def _per_source(config: Settings) -> dict[str, type[SourceSpider]]:
        try:
            return bound_spiders(load_sources(config.sources_file).values())
        except ConfigError:
            return {}
