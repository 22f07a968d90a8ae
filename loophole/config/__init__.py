"""Transitional: the settings moved to ``ground.config`` (issue 20).

A package rather than a module so that git sees the old module moved to ground/ (a rename),
and changes made to it on other branches follow it there when they merge.

Only ``loophole/bench.py`` and ``loophole/loadtest.py`` still import this path; they move beside
the tests in the other half of issue 20, and this module goes with them. Nothing else may import it
(tests/test_layers.py).
"""

from ground.config import SEEDS_DIR, child_environment, load_settings

__all__ = ["SEEDS_DIR", "child_environment", "load_settings"]
