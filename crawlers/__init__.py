"""Scrapy project: thin spiders on shared base classes; pipelines hand pages to the chain."""
