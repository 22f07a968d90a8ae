"""Broken configuration, source, pattern and watchlist files: a message naming file, line and
field; YAML tags that would build Python objects are refused, never executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.config import ConfigError, load_settings
from ground.sources import load_sources
from index.entities import load_watchlist
from index.patterns import load_pattern_file

PATTERN_OK = """version: "1"
patterns:
  - id: ok-pattern
    title: T
    description: D
    examples: [an example]
"""

CASES = [
    # (loader, file text, expected fragments of the message)
    ("config", "crawl:\n  download_delay: 1\n  timeout_seconds: soon\n", [":3:", "field crawl.timeout_seconds"]),
    ("config", "smtp:\n  host: mail\n  pasword: hunter2\n", [":3:", "field smtp.pasword", "Extra inputs"]),
    ("config", "embedding:\n  batch_size: 0\n", [":2:", "field embedding.batch_size", "greater than or equal"]),
    ("config", "crawl:\n  max_list_pages: 0\n", [":2:", "field crawl.max_list_pages", "greater than or equal"]),
    ("config", "smtp:\n  security: starttls\n  port: [25\n", [":4:", "YAML error", "flow sequence at line 3"]),
    ("config", "- just\n- a list\n", ["expected a mapping"]),
    ("patterns", PATTERN_OK + "  - id: Bad Id!\n    title: T\n    description: D\n    examples: [x]\n",
     [":7:", "field patterns.1.id"]),
    ("patterns", PATTERN_OK + "  - id: second\n    title: T\n    description: D\n    examples: ['  ']\n",
     [":10:", "field patterns.1.examples", "blank entry"]),
    ("patterns", PATTERN_OK + "  - id: third\n    title: T\n    examples: [x]\n", [":7:", "field patterns.1.description",
                                                                              "Field required"]),
    ("patterns", "version: 1\npatterns:\n  - id: a-b\n    title: T\n    description: D\n    examples: x\n",
     [":6:", "field patterns.0.examples"]),
    ("sources", "sources:\n  - id: s1\n    kind: vendor\n    spider: site\n    base_url: http://x\n    start: [/]\n"
                "  - id: s2\n    kind: blog\n    spider: site\n    base_url: http://y\n    start: [/]\n",
     [":8:", "field sources.1.kind"]),
    ("sources", "sources:\n  - id: s1\n    kind: vendor\n    spider: site\n    start: [/]\n",
     [":2:", "field sources.0.base_url", "Field required"]),
    ("watchlist", "entities:\n  - id: e1\n    name: N\n    type: us-cloud\n    aliases: oops\n    colour: red\n",
     ["field entities.0"]),
]


def _load(kind: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "config":
        monkeypatch.setenv("LOOPHOLE_CONFIG", str(path))
        load_settings()
    elif kind == "patterns":
        load_pattern_file(path)
    elif kind == "sources":
        load_sources(path)
    else:
        load_watchlist(path)


@pytest.mark.parametrize("kind,text,fragments", CASES)
def test_broken_file_names_file_line_and_field(kind: str, text: str, fragments: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        _load(kind, path, monkeypatch)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "hunter2" not in message               # a value, maybe a secret, is never echoed


@pytest.mark.parametrize("kind", ["config", "patterns", "sources", "watchlist"])
def test_python_yaml_tags_are_refused_not_run(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              home: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"{kind}.yaml"
    path.write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        _load(kind, path, monkeypatch)
    assert f"{path}:1: YAML error" in str(caught.value)
    assert not marker.exists()


def test_unreadable_and_binary_files_are_reported(tmp_path: Path) -> None:
    binary = tmp_path / "patterns.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load_pattern_file(binary)
    with pytest.raises(ConfigError, match="cannot read"):
        load_pattern_file(tmp_path / "missing.yaml")
