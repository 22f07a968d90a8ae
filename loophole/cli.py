"""The ``loophole`` command line. Each command is a thin shell over the stage APIs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from loophole import cli_web
from loophole.config import ConfigError, Settings, load_settings

app = typer.Typer(help="Loophole Watch: crawl, extract, index, flag and report cloud-loophole evidence.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
cli_web.register(app)  # serve, users, search
console = Console(stderr=True)
PAGE_SUFFIXES = {".html", ".htm", ".xhtml"}


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"configuration error\n{exc}", err=True)
        raise typer.Exit(2) from exc


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _page_files(paths: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, url) for each page; a folder's labels.jsonl gives each file its original URL."""
    for path in paths:
        if path.is_file():
            yield path, path.resolve().as_uri()
            continue
        if not path.is_dir():
            raise _fail(f"{path}: no such file or folder")
        urls = {}
        labels = path / "labels.jsonl"
        if labels.exists():
            for line in labels.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    urls[row["file"]] = row.get("url")
        for file in sorted(path.rglob("*")):
            if file.suffix.lower() in PAGE_SUFFIXES and file.is_file():
                rel = file.relative_to(path).as_posix()
                yield file, urls.get(rel) or file.resolve().as_uri()


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Saved pages or folders of them.")]) -> None:
    """Run saved pages through extraction, indexing and detection."""
    from tqdm import tqdm

    from loophole.pipeline import Monitor, RawPage

    monitor = Monitor(_settings())
    counts: dict[str, int] = {}
    try:
        for file, url in tqdm(list(_page_files(paths)), desc="ingest", unit="page", file=sys.stderr):
            result = monitor.ingest(RawPage(url=url, body=file.read_bytes(), source="local"))
            counts[result.status] = counts.get(result.status, 0) + 1
            if result.status == "rejected":
                console.print(f"rejected {file}: {result.reason}", highlight=False)
    finally:
        monitor.close()
    typer.echo(json.dumps(counts))


@app.command()
def crawl(source: Annotated[str, typer.Argument(help="Source id from seeds/sources.yaml.")],
          base_url: Annotated[str | None, typer.Option("--base-url", help="A mirror with the same paths.")] = None,
          limit: Annotated[int | None, typer.Option("--limit", help="Fetch at most this many content pages.")] = None,
          delay: Annotated[float | None, typer.Option("--delay", help="Seconds between requests per host.")] = None,
          ) -> None:
    """Crawl one source and run what it fetched through the chain."""
    from loophole.crawl import CrawlJob, run_crawl
    from loophole.sources import load_sources

    settings = _settings()
    sources = load_sources(settings.sources_file)
    if source not in sources:
        raise _fail(f"unknown source {source!r}; known: {', '.join(sources)}")
    overrides = {"DOWNLOAD_DELAY": delay} if delay is not None else {}
    stats = run_crawl(settings, [CrawlJob(sources[source], base_url, limit)], overrides)
    _print_crawl_table(stats)


def _print_crawl_table(stats: list[dict]) -> None:
    table = Table(title="Crawl")
    for column in ("source", "expected", "fetched", "stored", "unchanged", "rejected", "blocked", "flagged"):
        table.add_column(column)
    for row in stats:
        blocked = sum(v for k, v in row.items() if k.startswith("blocked/"))
        flagged = sum(v for k, v in row.items() if k.startswith("flagged/"))
        table.add_row(row["source"], *(str(row.get(k, 0)) for k in ("pages/expected", "pages/fetched",
                      "ingest/stored", "ingest/unchanged", "ingest/rejected")), str(blocked), str(flagged))
    Console().print(table)


@app.command()
def sources() -> None:
    """List the configured sources."""
    from loophole.sources import load_sources

    table = Table(title="Sources")
    for column in ("id", "kind", "spider", "browser", "schedule", "base_url"):
        table.add_column(column)
    for src in load_sources(_settings().sources_file).values():
        table.add_row(src.id, src.kind, src.spider, "yes" if src.browser else "no", src.schedule, src.base_url)
    Console().print(table)


@app.command()
def docs(source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Stored documents with their extracted fields."""
    from index.store import Store

    store = Store(_settings().db_url)
    rows = [{"id": d.id, "url": d.url, "source": d.source, "title": d.title, "kind": d.kind, "lang": d.lang,
             "date": d.published, "encoding": d.encoding, "fields": d.fields,
             "entities": [e["name"] for e in d.entities or []], "chars": len(d.text)}
            for d in store.documents(source)]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Documents ({len(rows)})")
    for column in ("id", "kind", "lang", "date", "title"):
        table.add_column(column)
    for doc in store.documents(source):
        table.add_row(str(doc.id), doc.kind, doc.lang, doc.published or "", doc.title[:70])
    Console().print(table)


@app.command()
def digest(send: Annotated[bool, typer.Option("--send", help="Deliver (SMTP, else the outbox).")] = False,
           out: Annotated[Path | None, typer.Option("--out", help="Write the digest as .eml into DIR.")] = None,
           ) -> None:
    """Render the digest of alerts not sent before; without --send/--out, only print it."""
    from alerts.delivery import DeliveryError
    from loophole.notify import deliver_digest, preview_digest

    settings = _settings()
    if not send and out is None:
        typer.echo(preview_digest(settings))
        return
    try:
        where, count = deliver_digest(settings, out)
    except DeliveryError as exc:
        raise _fail(f"{exc}; alerts stay unsent", code=1) from exc
    typer.echo(f"digest with {count} alerts -> {where}")


@app.command(name="eval")
def evaluate_cmd(folder: Annotated[Path, typer.Argument(help="Folder with pages and labels.jsonl.")],
                 patterns: Annotated[list[Path] | None, typer.Option("--patterns", help="Extra pattern file.")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
                 ) -> None:
    """Score a labelled folder (in a temporary data directory; your data is untouched)."""
    from loophole.evaluate import evaluate, misclassified

    try:
        result, outcomes = evaluate(folder, _settings(), patterns or [], progress=not as_json)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _print_eval(result, misclassified(outcomes))


def _print_eval(result: dict, wrong: list) -> None:
    out = Console()
    alert = result["alert"]
    out.print(f"documents {result['documents']}  alert P {alert['precision']:.3f} R {alert['recall']:.3f} "
              f"F1 {alert['f1']:.3f}  macro-F1 {result['macro_f1']:.3f}")
    table = Table(title="Per pattern")
    for column in ("pattern", "precision", "recall", "f1", "support"):
        table.add_column(column)
    for pid, row in result["patterns"].items():
        table.add_row(pid, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    out.print(table)
    for outcome in wrong:
        out.print(f"[bold]{outcome.label.file}[/bold] ({outcome.kind}) labelled {sorted(outcome.label.patterns)} "
                  f"predicted {sorted(outcome.predicted)}", highlight=False)
        for pid, why in outcome.evidence.items():
            out.print(f"    {pid}: {why}", highlight=False, markup=False)


@app.command()
def demo(port: Annotated[int, typer.Option(help="Port for the mock web; keep it fixed between runs, since "
                                               "its URLs identify the documents.")] = 8737) -> None:
    """Serve the mock web on 127.0.0.1, crawl it, run the chain and write the digest."""
    from loophole.demo import run_demo

    run_demo(_settings(), port)


if __name__ == "__main__":
    app()
