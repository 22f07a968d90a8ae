"""Scrapy settings for the ``scrapy`` command (scrapy.cfg): ``scrapy list``, ``scrapy crawl SOURCE``.

The command is an entry point like ``loophole crawl``: the configuration is loaded once, here,
and added to the static crawlers.settings, so the crawl's components receive it through Scrapy's
settings and never load it themselves.
"""

from __future__ import annotations

from crawlers import settings as _static
from ground.config import load_settings
from loophole.crawl import project_settings

globals().update({name: value for name, value in vars(_static).items() if name.isupper()})
globals().update(project_settings(load_settings()))
