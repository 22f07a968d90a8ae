"""Benchmark and load-test machinery: ``make bench`` (``python -m tests.bench``) and the web
search load test (``python -m tests.bench.loadtest``, also used by tests/test_web_load.py).

It lives beside the tests, not in the installed packages: nothing the product runs needs it.
"""
