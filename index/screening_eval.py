"""Precision and recall of party matching on a labelled set of names (tests/fixtures/listed_parties).

A name counts as found when its best ``listed`` match is the entry it is labelled with; a
``listed`` match to another entry, or to any entry for a name labelled as not listed, is a
false positive. ``possible`` matches are counted apart: they are leads, shown as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground.config import read_yaml_mapping
from index.screening import LISTED, Match, Screener

METHOD_GROUPS = {"exact": "exact/alias", "alias": "exact/alias", "fuzzy": "fuzzy",
                 "transliteration": "transliteration", "embedding": "embedding"}


@dataclass(frozen=True)
class Labelled:
    name: str
    expect: str | None
    kind: str


def load_labels(path: Path) -> list[Labelled]:
    return [Labelled(str(item["name"]), item.get("expect"), str(item.get("kind", "")))
            for item in read_yaml_mapping(path).get("names", [])]


def _rates(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0, "tp": tp, "fp": fp, "fn": fn}


def _score(items: list[Labelled], decided: dict[str, Match | None]) -> dict[str, Any]:
    tp = fp = fn = 0
    for item in items:
        got = decided.get(item.name)
        right = got is not None and got.entry_name == item.expect
        tp += right
        fp += got is not None and not right
        fn += item.expect is not None and not right
    return _rates(tp, fp, fn)


def _first(matches: Iterable[Match], listed_only: bool = True) -> Match | None:
    ranked = sorted(matches, key=lambda m: m.rank, reverse=True)
    return next((m for m in ranked if m.strength == LISTED or not listed_only), None)


def evaluate(screener: Screener, items: list[Labelled]) -> dict[str, Any]:
    """Overall and per-method precision/recall, per-kind hits, the possible leads, and the errors."""
    every = screener.every_match(item.name for item in items)
    ranked = {name: screener._best(found) for name, found in every.items()}
    decided = {name: _first(found) for name, found in ranked.items()}
    result: dict[str, Any] = {"names": len(items), "listed_names": sum(i.expect is not None for i in items),
                              "overall": _score(items, decided)}
    # Each method alone, its best match taken as a finding (the embedding's "possible" included).
    result["methods_alone"] = {
        group: _score(items, {name: _first((m for m in found if METHOD_GROUPS[m.method] == group),
                                           listed_only=group != "embedding") for name, found in every.items()})
        for group in dict.fromkeys(METHOD_GROUPS.values())}
    result["deciding_method"] = {group: sum(1 for i in items if (d := decided.get(i.name)) and
                                            METHOD_GROUPS[d.method] == group and d.entry_name == i.expect)
                                 for group in dict.fromkeys(METHOD_GROUPS.values())}
    listed = [i for i in items if i.expect is not None]
    result["possible"] = {
        "listed_names_found_as_listed_or_possible": sum(1 for i in listed if any(
            m.entry_name == i.expect for m in ranked[i.name])),
        "unlisted_names_with_a_possible_match": sum(1 for i in items if i.expect is None and ranked[i.name]),
        "unlisted_names": len(items) - len(listed)}
    result["by_kind"] = _by_kind(items, decided)
    result["errors"] = [{"name": i.name, "expect": i.expect, "got": d.entry_name if d else None,
                         "method": d.method if d else None, "score": round(d.score, 3) if d else None}
                        for i in items if (d := decided.get(i.name)) is not None and d.entry_name != i.expect
                        or (d is None and i.expect is not None)]
    return result


def _by_kind(items: list[Labelled], decided: dict[str, Match | None]) -> dict[str, str]:
    counts: dict[str, list[int]] = {}
    for item in items:
        got = decided.get(item.name)
        right = (got.entry_name if got else None) == item.expect
        counts.setdefault(item.kind, [0, 0])[0] += right
        counts[item.kind][1] += 1
    return {kind: f"{right}/{total}" for kind, (right, total) in counts.items()}
