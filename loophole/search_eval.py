"""Search quality on labelled folders: how much of each query's top ten is evidence for its pattern.

Why this measure: an analyst reads the first page of results. A query written for a pattern
(tests/fixtures/search_queries/queries.yaml, written from spec/patterns.md apart from the pattern
files) is judged by the share of its top ten that the labels call evidence of that pattern
(precision@10), and by how many of those are Chinese pages, since most evidence is Chinese. The
same queries run through a naive dense baseline (multilingual sentence vectors, each page ranked
by its best sentence) on the same pages, so the table says what the ranking adds.

``python -m loophole.search_eval --queries FILE DIR... [--home DIR] [--json]`` ingests the folders
into one data directory (kept with ``--home`` for the next run) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from ground.config import ConfigError, Settings, load_settings, read_yaml_mapping
from index.search import SearchEngine, SearchFilters, engine_for
from loophole.pipeline import Monitor, RawPage

TOP = 10
CHINESE_WANTED = 3     # Chinese evidence pages wanted in a top ten, where the pages hold that many
Ranker = Callable[[str], list[int]]


@dataclass(frozen=True)
class LabelledPage:
    url: str
    lang: str
    kind: str
    patterns: frozenset[str]


@dataclass(frozen=True)
class Query:
    pattern: str
    lang: str
    text: str


@dataclass
class QueryOutcome:
    query: Query
    precision: float
    chinese_evidence: int
    chinese_wanted: int
    top: list[str] = field(default_factory=list)

    @property
    def chinese_ok(self) -> bool:
        return self.chinese_evidence >= self.chinese_wanted


def read_queries(path: Path) -> list[Query]:
    """The query file: ``queries: {pattern: {lang: [text, ...]}}``."""
    data = read_yaml_mapping(path).get("queries")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a 'queries' mapping of pattern -> language -> list")
    return [Query(pattern, lang, str(text)) for pattern, by_lang in data.items()
            for lang, texts in (by_lang or {}).items() for text in texts or []]


def read_folder(folder: Path) -> list[tuple[str, LabelledPage]]:
    """(file name, label) of every line of the folder's labels.jsonl."""
    rows = []
    for number, line in enumerate((folder / "labels.jsonl").read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((row["file"], LabelledPage(row["url"], row.get("lang", ""), row.get("kind", ""),
                                                   frozenset(row.get("patterns") or []))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{folder / 'labels.jsonl'}:{number}: bad label line: {exc}") from exc
    return rows


def ingest_folders(settings: Settings, folders: Sequence[Path]) -> dict[str, LabelledPage]:
    """Every labelled page of the folders in one data directory, by the URL it was stored under
    (a URL that two folders share gets the second folder's name as a fragment)."""
    labels: dict[str, LabelledPage] = {}
    monitor = Monitor(settings)
    try:
        for folder in folders:
            for file, label in read_folder(folder):
                url = label.url if label.url not in labels else f"{label.url}#{folder.name}"
                labels[url] = LabelledPage(url, label.lang, label.kind, label.patterns)
                if monitor.store.document_by_url(url) is None:
                    monitor.ingest(RawPage(url=url, body=(folder / file).read_bytes()))
    finally:
        monitor.close()
    return labels


def judge(query: Query, ranked_urls: list[str], labels: dict[str, LabelledPage]) -> QueryOutcome:
    evidence = {url for url, page in labels.items() if query.pattern in page.patterns}
    chinese = {url for url in evidence if labels[url].lang == "zh"}
    top = ranked_urls[:TOP]
    return QueryOutcome(query, len(evidence.intersection(top)) / TOP, len(chinese.intersection(top)),
                        min(CHINESE_WANTED, len(chinese)), top)


def evaluate(rankers: dict[str, Ranker], queries: list[Query], labels: dict[str, LabelledPage],
             urls: dict[int, str]) -> dict[str, list[QueryOutcome]]:
    """Each ranker's outcome for every query."""
    return {name: [judge(q, [urls[d] for d in rank(q.text) if d in urls], labels) for q in queries]
            for name, rank in rankers.items()}


def summary(outcomes: dict[str, list[QueryOutcome]]) -> dict[str, Any]:
    """Per ranker and query language: mean precision@10, the worst query, and how many queries
    have their Chinese evidence pages in the top ten; and per pattern for each language."""
    report: dict[str, Any] = {}
    for name, rows in outcomes.items():
        by_lang: dict[str, Any] = {}
        for lang in sorted({r.query.lang for r in rows}):
            mine = [r for r in rows if r.query.lang == lang]
            patterns = sorted({r.query.pattern for r in mine})
            by_lang[lang] = {
                "queries": len(mine), "precision@10": round(mean(r.precision for r in mine), 3),
                "worst": round(min(r.precision for r in mine), 3),
                "chinese_ok": sum(r.chinese_ok for r in mine),
                "patterns": {p: round(mean(r.precision for r in mine if r.query.pattern == p), 3) for p in patterns}}
        report[name] = by_lang
    return report


def rankers_for(engine: SearchEngine) -> dict[str, Ranker]:
    """The search as shipped (evidence first, the default), everything, and the dense baseline."""
    def ranked(view: str) -> Ranker:
        return lambda text: [r.doc_id for r in engine.search(text, SearchFilters(), per_page=TOP, view=view).results]

    return {"hybrid, evidence first": ranked("evidence"), "hybrid, everything": ranked("everything"),
            "dense baseline (best sentence per page)": lambda text: engine.dense_documents(text, TOP)}


def document_urls(engine: SearchEngine) -> dict[int, str]:
    return {doc.id: doc.url for doc in engine.store.documents()}


def run(query_file: Path, folders: Sequence[Path], home: Path) -> tuple[dict[str, Any], dict[str, list[QueryOutcome]]]:
    settings = load_settings(path=None, home=home)
    labels = ingest_folders(settings, folders)
    engine = engine_for(settings)
    outcomes = evaluate(rankers_for(engine), read_queries(query_file), labels, document_urls(engine))
    return summary(outcomes), outcomes


def print_table(report: dict[str, Any]) -> None:
    print(f"{'ranker':42} {'lang':4} {'P@10':>5} {'worst':>5} {'zh ok':>6}  per pattern")
    for name, by_lang in report.items():
        for lang, row in by_lang.items():
            patterns = " ".join(f"{p[:12]}={v:.2f}" for p, v in row["patterns"].items())
            print(f"{name:42} {lang:4} {row['precision@10']:5.3f} {row['worst']:5.2f} "
                  f"{row['chinese_ok']:>3}/{row['queries']:<2}  {patterns}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="labelled folders (pages and labels.jsonl)")
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--home", type=Path, help="data directory to ingest into and keep (default: temporary)")
    parser.add_argument("--json", action="store_true", help="print the summary and every query's outcome")
    parser.add_argument("--verbose", action="store_true", help="print each query's precision")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="loophole-search-eval-"))
    report, outcomes = run(args.queries, args.folders, home)
    if args.json:
        print(json.dumps({"summary": report, "queries": {name: [
            {"pattern": o.query.pattern, "lang": o.query.lang, "query": o.query.text, "precision@10": o.precision,
             "chinese_evidence": o.chinese_evidence, "chinese_wanted": o.chinese_wanted, "top": o.top}
            for o in rows] for name, rows in outcomes.items()}}, ensure_ascii=False, indent=1))
        return
    print_table(report)
    if args.verbose:
        for name, rows in outcomes.items():
            print(f"\n{name}")
            for o in rows:
                print(f"  {o.precision:.1f} zh {o.chinese_evidence}/{o.chinese_wanted} [{o.query.pattern[:10]}] "
                      f"{o.query.text}")


if __name__ == "__main__":
    main()
