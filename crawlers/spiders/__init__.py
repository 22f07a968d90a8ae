"""Spiders: each a few dozen lines on :mod:`crawlers.spiders.base`."""
