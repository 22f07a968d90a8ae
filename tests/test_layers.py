"""The import contract: dependencies point one way, down the floors.

    loophole, web     the shell: command line, service, pipeline, web app (entry points)
    crawlers, alerts  Scrapy project; digests and delivery
    index             store, embeddings, vector index, detection, search
    extract           bytes -> text and fields (pure: stores nothing)
    ground            settings and source definitions

A module may import its own package and any floor below its own, never one above nor a
neighbour on its floor: ``crawlers`` and ``alerts`` do not import each other, and ``web``
does not import ``loophole`` (the command line starts the web app, so ``loophole`` may
import ``web``; the web app gets its ``Settings`` passed in, it has no need of the shell).
Every import counts, at module level or inside a function, and so does a module named as a
string to ``importlib.import_module``. Scrapy components named in settings strings
(``"crawlers.pipelines.IngestPipeline"``) are not imports: a setting names them from above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOOR = {"ground": 0, "extract": 1, "index": 2, "crawlers": 3, "alerts": 3, "loophole": 4, "web": 4}
# Above-floor imports allowed on the same floor: the command line starts the web app.
SIDEWAYS = {("loophole", "web")}
# Transitional: they still import loophole.config/loophole.sources and move beside the tests in the
# other half of issue 20; the re-exports go when they have moved and import ground instead.
MOVING = {"loophole/bench.py", "loophole/loadtest.py"}


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import statement and ``import_module("...")`` literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_import_module(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name == "import_module"


def _allowed(importer: str, imported: str) -> bool:
    if imported not in FLOOR or imported == importer:
        return True
    if (importer, imported) in SIDEWAYS:
        return True
    return FLOOR[imported] < FLOOR[importer]


def _violations(package: str) -> Iterator[str]:
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        for line, module in _imported(tree):
            if not _allowed(package, module.split(".")[0]):
                yield f"{relative}:{line}: {package} imports {module}"


@pytest.mark.parametrize("package", sorted(FLOOR))
def test_no_import_goes_up(package: str) -> None:
    assert list(_violations(package)) == []


def test_ground_is_the_only_home_of_settings() -> None:
    """The transitional ``loophole.config``/``loophole.sources`` re-exports serve only the modules
    that are moving out of the package; nothing else may come to depend on them."""
    users = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in MOVING or relative.startswith((".", "seeds/")):
            continue
        for line, module in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            if module in ("loophole.config", "loophole.sources"):
                users.append(f"{relative}:{line}: {module}")
    assert users == []


def test_the_checker_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    from loophole.pipeline import Monitor\n    importlib.import_module('web.app')\n")
    assert [module for _, module in _imported(tree)] == ["loophole.pipeline", "web.app"]
    assert not _allowed("crawlers", "loophole") and not _allowed("alerts", "crawlers")
    assert _allowed("loophole", "web") and not _allowed("web", "loophole") and _allowed("index", "ground")
