"""Transitional: the source definitions moved to ``ground.sources`` (issue 20).

A package rather than a module so that git sees the old module moved to ground/ (a rename),
and changes made to it on other branches follow it there when they merge.

Only ``loophole/bench.py`` still imports this path; it moves beside the tests in the other half
of issue 20, and this module goes with it. Nothing else may import it (tests/test_layers.py).
"""

from ground.sources import load_sources

__all__ = ["load_sources"]
