"""One spider per configured source, so ``scrapy list`` shows every source and
``scrapy crawl SOURCE_ID`` works for sources that share a generic spider.

A source whose id is its spider's name (``ccgp``) uses that spider class directly.
"""

from __future__ import annotations

from crawlers.spiders.base import SourceSpider
from crawlers.spiders.ccgp import CcgpSpider
from crawlers.spiders.discovery import DiscoverySpider
from crawlers.spiders.epoint import EpointSpider
from crawlers.spiders.ggzy import GgzySpider
from crawlers.spiders.js_portal import JsPortalSpider
from crawlers.spiders.marketplace import MarketplaceSpider
from crawlers.spiders.site import SiteSpider
from crawlers.spiders.zcy import ZcySpider
from loophole.config import ConfigError, load_settings
from loophole.sources import Source, load_sources

SPIDERS: dict[str, type[SourceSpider]] = {
    cls.name: cls for cls in (CcgpSpider, DiscoverySpider, EpointSpider, GgzySpider, JsPortalSpider, MarketplaceSpider,
                              SiteSpider, ZcySpider)
}


def spider_class(source: Source) -> type[SourceSpider]:
    """The spider class bound to ``source`` (a subclass named after it when ids differ)."""
    try:
        base = SPIDERS[source.spider]
    except KeyError as exc:
        known = ", ".join(SPIDERS)
        raise ConfigError(f"source {source.id}: unknown spider {source.spider!r}; known: {known}") from exc
    if source.id == base.name:
        return base
    name = "".join(part.title() for part in source.id.replace("-", "_").split("_")) + "Spider"
    return type(name, (base,), {"name": source.id, "source_id": source.id, "__module__": __name__})


def _bound_spiders() -> dict[str, type[SourceSpider]]:
    try:
        sources = load_sources(load_settings().sources_file)
    except ConfigError:
        return {}  # `loophole sources` reports the error; the base spiders stay listed
    return {source.id: spider_class(source) for source in sources.values()
            if source.spider in SPIDERS and source.id != source.spider}


# Module-level classes are what Scrapy's spider loader finds.
globals().update({cls.__name__: cls for cls in _bound_spiders().values()})
