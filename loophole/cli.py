"""The ``loophole`` command line. Each command is a thin shell over the stage APIs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ground.config import MAX_ROW_ID, ConfigError, Settings
from loophole import cli_alerts, cli_lists, cli_web
from loophole.cli_common import command_settings, fail

if TYPE_CHECKING:
    from ground.sources import Source
    from index.decision import DecisionModel
    from loophole.evaluate import Confidence, Outcome

app = typer.Typer(help="Loophole Watch: crawl, extract, index, flag and report cloud-loophole evidence.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
cli_web.register(app)  # serve, users, search
cli_lists.register(app)  # lists update/versions, screen
console = Console(stderr=True)
PAGE_SUFFIXES = {".html", ".htm", ".xhtml"}


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
            raise fail(f"{path}: no such file or folder")
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
def ingest(paths: Annotated[list[Path], typer.Argument(help="Saved pages or folders of them.")],
           workers: Annotated[int | None, typer.Option(
               "--workers", help="Processes that extract and embed (default: embedding.workers).")] = None) -> None:
    """Run saved pages through extraction, indexing and detection."""
    from tqdm import tqdm

    from loophole.pipeline import Monitor, RawPage

    settings = command_settings()
    monitor = Monitor(settings)
    try:
        monitor.check_patterns()
    except ConfigError as exc:
        monitor.close()
        raise fail(str(exc)) from exc
    files = list(_page_files(paths))
    pages = (RawPage(url=url, body=file.read_bytes(), source="local") for file, url in files)
    counts: dict[str, int] = {}
    pool = monitor.worker_pool(settings.embedding.workers if workers is None else workers)
    try:
        results = monitor.ingest_all(pages, pool)
        for (file, _), result in zip(files, tqdm(results, total=len(files), desc="ingest", unit="page",
                                                  file=sys.stderr), strict=True):
            counts[result.status] = counts.get(result.status, 0) + 1
            if result.status == "rejected":
                console.print(f"rejected {file}: {result.reason}", highlight=False)
    finally:
        if pool is not None:
            pool.close()
        monitor.close()
    typer.echo(json.dumps(counts))


def _checked_sources(settings: Settings) -> dict[str, Source]:
    """The sources file, read and checked against the spiders (their options), or a named failure."""
    from crawlers.spiders.registry import check_sources
    from ground.sources import load_sources

    try:
        registry = load_sources(settings.sources_file)
        check_sources(registry.values())
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    return registry


@app.command()
def crawl(source: Annotated[list[str], typer.Argument(help="Source ids from seeds/sources.yaml (run together).")],
          base_url: Annotated[str | None, typer.Option("--base-url", help="A mirror with the same paths.")] = None,
          limit: Annotated[int | None, typer.Option("--limit", help="Fetch at most this many content pages.")] = None,
          delay: Annotated[float | None, typer.Option("--delay", help="Seconds between requests per host.")] = None,
          force: Annotated[bool, typer.Option("--force", help="Crawl even while backing off after block pages.")]
          = False,
          ) -> None:
    """Crawl sources (concurrently, in one process) and run what they fetched through the chain."""
    from loophole.crawl import CrawlJob, run_crawl

    settings = command_settings()
    sources = _checked_sources(settings)
    unknown = [name for name in source if name not in sources]
    if unknown:
        raise fail(f"unknown source {', '.join(map(repr, unknown))}; known: {', '.join(sources)}")
    overrides = {"DOWNLOAD_DELAY": delay} if delay is not None else {}
    stats = run_crawl(settings, [CrawlJob(sources[name], base_url, limit, force) for name in source], overrides)
    _print_crawl_table(stats)


def _print_crawl_table(stats: list[dict]) -> None:
    table = Table(title="Crawl")
    for column in ("source", "expected", "fetched", "stored", "unchanged", "rejected", "blocked", "flagged"):
        table.add_column(column)
    for row in stats:
        if "skipped" in row:
            console.print(f"{row['source']}: skipped, {row['skipped']} (use --force to crawl now)", highlight=False)
            continue
        blocked = sum(v for k, v in row.items() if k.startswith("blocked/"))
        flagged = sum(v for k, v in row.items() if k.startswith("flagged/"))
        table.add_row(row["source"], *(str(row.get(k, 0)) for k in ("pages/expected", "pages/fetched",
                      "ingest/stored", "ingest/unchanged", "ingest/rejected")), str(blocked), str(flagged))
    Console().print(table)


@app.command()
def sources(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
            coverage: Annotated[bool, typer.Option(
                "--coverage", help="Per province: the sources that cover it and when each last ran.")] = False,
            ) -> None:
    """List the configured sources."""
    settings = command_settings()
    registry = _checked_sources(settings)
    if coverage:
        _print_coverage(settings, list(registry.values()), as_json)
        return
    if as_json:
        typer.echo(json.dumps([src.model_dump() for src in registry.values()], ensure_ascii=False, indent=2))
        return
    table = Table(title="Sources")
    for column in ("id", "kind", "spider", "browser", "schedule", "entry", "base_url"):
        table.add_column(column)
    for src in registry.values():
        entry = ", ".join(filter(None, [f"{len(src.start)} start" if src.start else "",
                                        "search" if src.search else "", "seeds" if src.seeds_file else ""]))
        table.add_row(src.id, src.kind, src.spider, "yes" if src.browser else "no",
                      f"{src.schedule} ({src.timezone})", entry, src.base_url)
    Console().print(table)


def _print_coverage(settings: Settings, registry: list[Source], as_json: bool) -> None:
    """One row per province (and one for central buyers): its sources and when each last ran."""
    from index.store import Store
    from loophole.coverage import coverage, describe, last_runs

    settings.ensure_dirs()
    store = Store(settings.db_url)
    try:
        rows = coverage(registry, last_runs(store, registry))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table(title="Coverage by province (last run in UTC)")
    table.add_column("province")
    table.add_column("sources")
    for row in rows:
        table.add_row(row["province"], "; ".join(describe(entry) for entry in row["sources"]) or "none")
    Console(width=200).print(table)


@app.command()
def evidence(doc_id: Annotated[int | None, typer.Argument(help="Document id (see `loophole docs`).", min=1,
                                                         max=MAX_ROW_ID)] = None,
             out: Annotated[Path | None, typer.Option("--out", help="Bundle file to write (.zip).")] = None,
             verify: Annotated[Path | None, typer.Option("--verify", help="Check a bundle's hashes.")] = None,
             manifest_sha256: Annotated[str | None, typer.Option(
                 "--manifest-sha256", help="With --verify: the manifest hash printed when the bundle was written "
                                           "(else it must be recorded in this store).")] = None,
             ) -> None:
    """Write a verifiable evidence bundle (zip + WARC) for a document, or verify one."""
    from loophole.evidence import EvidenceError, recorded_manifest, verify_bundle, write_bundle

    if verify is not None:
        settings = command_settings()
        settings.ensure_dirs()
        result = verify_bundle(verify, lambda digest: recorded_manifest(settings, digest), manifest_sha256)
        typer.echo(result.line())
        raise typer.Exit(0 if result.ok else 1)
    if doc_id is None:
        raise fail("give a document id (or --verify FILE)")
    target = out or Path(f"evidence-{doc_id}.zip")
    try:
        written = write_bundle(command_settings(), doc_id, target)
    except (EvidenceError, OSError) as exc:
        raise fail(str(exc), code=1) from exc
    typer.echo(f"{target}: {len(written.manifest['files'])} files (the captures also as WARC in capture.warc.gz); "
               f"manifest SHA-256 {written.manifest_sha256}, recorded in the store: keep it with the bundle")


@app.command()
def docs(source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Stored documents with their extracted fields."""
    from index.store import Store

    store = Store(command_settings().db_url)
    rows = [{"id": d.id, "url": d.url, "source": d.source, "title": d.title, "kind": d.kind, "lang": d.lang,
             "date": d.published, "encoding": d.encoding, "fields": d.fields, "process_id": d.process_id,
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

    settings = command_settings()
    if not send and out is None:
        typer.echo(preview_digest(settings))
        return
    try:
        report = deliver_digest(settings, out)
    except (DeliveryError, OSError) as exc:
        raise fail(f"{exc}; alerts stay unsent", code=1) from exc
    for line in report.lines() or ["no subscription has a channel: nothing delivered"]:
        typer.echo(f"digest {line}")


@app.command(name="eval")
def evaluate_cmd(folder: Annotated[Path, typer.Argument(help="Folder with pages and labels.jsonl.")],
                 patterns: Annotated[list[Path] | None, typer.Option("--patterns", help="Extra pattern file.")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
                 generic: Annotated[bool, typer.Option(
                     "--generic", help="Decide every pattern by the generic weights, as if each were given only as a "
                                       "YAML file.")] = False,
                 mirrors: Annotated[Path | None, typer.Option(
                     "--mirrors", help="FOLDER is instead a list of pages in public repositories (JSON lines: repo, "
                                       "path, commit, url, kind, lang, patterns), read in place from the git "
                                       "mirrors under this directory.")] = None,
                 ) -> None:
    """Score a labelled folder (in a temporary data directory; your data is untouched)."""
    from loophole.evaluate import confidence, false_alarms, misclassified

    settings = command_settings(create=False)
    try:
        result, outcomes = _labelled_outcomes(folder, mirrors, settings, patterns or [], not as_json, generic)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))   # the contract in spec/design.md, nothing more
        return
    out = Console()
    _print_eval(out, result, misclassified(outcomes), *false_alarms(outcomes))
    _print_confidence(out, confidence(outcomes))


def _labelled_outcomes(folder: Path, mirrors: Path | None, settings: Settings, patterns: list[Path],
                       progress: bool, generic: bool = False) -> tuple[dict, list[Outcome]]:
    """A labelled folder scored, or with ``mirrors`` a list of repository pages read in place."""
    from loophole.evaluate import evaluate
    from loophole.repo_pages import evaluate_repo_pages

    if mirrors is None:
        return evaluate(folder, settings, patterns, progress=progress, generic=generic)
    result, outcomes, missing = evaluate_repo_pages(folder, mirrors, settings, patterns, progress=progress,
                                                    generic=generic)
    if missing and progress:
        typer.echo(f"{len(missing)} listed pages have no mirror or commit under {mirrors}: left out", err=True)
    return result, outcomes


@app.command()
def recalibrate(folder: Annotated[Path, typer.Argument(
                    help="Labelled real pages the weights were never fitted on (a folder, or with --mirrors a list "
                         "of repository pages).")],
                mirrors: Annotated[Path | None, typer.Option(
                    "--mirrors", help="FOLDER is a list of pages in public repositories, read in place from the git "
                                      "mirrors under this directory (as for eval).")] = None,
                out: Annotated[Path | None, typer.Option(
                    help="Decision file to write (default: HOME/decision.yaml).")] = None,
                min_evidence: Annotated[int, typer.Option(
                    "--min-evidence", min=2, help="Evidence pages a pattern needs among them to be rescaled.")] = 15,
                stage: Annotated[str | None, typer.Option(
                    "--stage", help="Instead of rescaling, fit this pattern a stage over its log-odds and a text model "
                                    "fitted with the real pages (needs --mirrors: pages are held out by collection, "
                                    "and --written).")] = None,
                written: Annotated[list[Path] | None, typer.Option(
                    "--written", help="With --stage: a labelled folder of written pages the stage must hold on "
                                      "(repeatable; the decision's own training folders).")] = None,
                ) -> None:
    """Rescale each pattern's shown probability to what such scores were worth on labelled real pages.

    The same pages alert as before (each pattern's cut is mapped the same way); only the number shown moves.
    With --stage, a pattern gets a stage instead, and its alerts change (see index.decision.Stage)."""
    from index.decision import read_decision
    from loophole.evaluate import fitted_file

    settings = command_settings()
    path = out or settings.home / "decision.yaml"
    try:
        _, outcomes = _labelled_outcomes(folder, mirrors, settings, [], progress=True)
        decision = read_decision(fitted_file(settings, "decision.yaml", settings.decision_file))
        if stage is None:
            _rescale(decision, outcomes, folder, min_evidence, path)
        else:
            _stage(decision, outcomes, folder, mirrors, stage, written or [], settings, path)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def _rescale(decision: DecisionModel, outcomes: list[Outcome], folder: Path, min_evidence: int, path: Path) -> None:
    from index.decision import save_decision
    from loophole.calibrate import recalibrated, score_reliability

    result = recalibrated(decision, outcomes, str(folder), min_evidence)
    save_decision(path, result.decision)
    typer.echo(f"decision model written to {path}")
    rescaled = result.decision
    for pid, why in result.skipped.items():
        typer.echo(f"  {pid:36} not rescaled: {why}")
    for pid, shift in result.fitted.items():
        before, after = (score_reliability(model, outcomes, pid) for model in (decision, rescaled))
        typer.echo(f"  {pid:36} {shift.pages} pages ({shift.evidence} evidence): slope {shift.slope}, offset "
                   f"{shift.offset}; cut {decision.cut_for(pid):.3f} -> {rescaled.cut_for(pid):.3f}; here Brier "
                   f"{before['brier']:.3f} -> {after['brier']:.3f}, calibration error {before['ece']:.3f} -> "
                   f"{after['ece']:.3f}")


def _stage(decision: DecisionModel, outcomes: list[Outcome], folder: Path, mirrors: Path | None, pattern_id: str,
           written: list[Path], settings: Settings, path: Path) -> None:
    from index.decision import save_decision
    from index.textmodel import TextModels
    from loophole.calibrate import labelled_outcomes, staged
    from loophole.evaluate import fitted_file
    from loophole.repo_pages import read_repo_labels

    if mirrors is None or not written:
        raise ConfigError("--stage needs --mirrors (real pages held out by collection) and --written folders")
    collection = {page.label.url: page.collection for page in read_repo_labels(folder)}
    real = [(f"collection {collection[o.label.url]}", o) for o in outcomes]
    text_models = TextModels.load(fitted_file(settings, "text_models.npz", settings.text_model_file))
    result = staged(decision, text_models, real, labelled_outcomes(written, settings), pattern_id,
                    f"{folder} + {', '.join(map(str, written))}")
    save_decision(path, result.decision)
    result.text_models.save(path.with_name("text_models.npz"))
    fitted = result.decision.stages[pattern_id]
    typer.echo(f"decision model and text models written to {path} and {path.with_name('text_models.npz')}")
    typer.echo(f"  {pattern_id}: stage over {', '.join(fitted.inputs)}: coefficients {fitted.coefficients}, "
               f"intercept {fitted.intercept}, {fitted.pages} pages ({fitted.evidence} evidence), cut {fitted.cut}")
    for name, figures in result.held_out.items():
        typer.echo(f"  real pages held out by collection, {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def _print_eval(out: Console, result: dict, wrong: list, per_100: float, news: list[str]) -> None:
    alert = result["alert"]
    out.print(f"documents {result['documents']}  alert P {alert['precision']:.3f} R {alert['recall']:.3f} "
              f"F1 {alert['f1']:.3f}  macro-F1 {result['macro_f1']:.3f}")
    out.print(f"false alarms per 100 negatives {per_100:.1f}  news alerts {len(news)}"
              + (f" ({', '.join(news)})" if news else ""), highlight=False, markup=False)
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


def _print_confidence(out: Console, shown: Confidence) -> None:
    """What a score in an alert means on this folder (loophole.evaluate.confidence)."""
    out.print(f"confidence of the scores: Brier {shown.brier:.3f}, expected calibration error {shown.ece:.3f}",
              highlight=False)
    table = Table(title="Scores against labels (every page, every pattern)")
    for column in ("score", "scored", "mean score", "evidence"):
        table.add_column(column)
    for band in shown.bands:
        table.add_row(f"{band.low:.1f}-{band.high:.1f}", str(band.scores), f"{band.mean_score:.2f}",
                      f"{band.evidence:.2f}")
    out.print(table)


@app.command()
def feedback(doc_id: Annotated[int, typer.Argument(help="Document id (see `loophole docs`).", min=1, max=MAX_ROW_ID)],
             confirm: Annotated[bool, typer.Option("--confirm", help="The page is evidence.")] = False,
             dismiss: Annotated[bool, typer.Option("--dismiss", help="The page is not evidence.")] = False,
             pattern: Annotated[str | None, typer.Option("--pattern", help="Only this pattern.")] = None,
             note: Annotated[str, typer.Option(help="Why, for the alert's history.")] = "") -> None:
    """Record a verdict; it becomes an example or counter-example and moves the next calibration."""
    from index.feedback import FeedbackError, record_feedback
    from index.store import Store

    if confirm == dismiss:
        raise fail("give exactly one of --confirm or --dismiss")
    settings = command_settings()
    settings.ensure_dirs()
    store = Store(settings.db_url)
    try:
        record_feedback(store, doc_id, "confirm" if confirm else "dismiss", pattern, note)
    except FeedbackError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.close()
    typer.echo(f"recorded: document {doc_id} {'confirmed' if confirm else 'dismissed'}"
               + (f" for {pattern}" if pattern else ""))


@app.command()
def calibrate(folders: Annotated[list[Path] | None,
                                typer.Argument(help="Labelled folders (pages + labels.jsonl).")] = None,
              use_feedback: Annotated[bool, typer.Option("--feedback/--no-feedback",
                                                         help="Also learn from recorded verdicts.")] = True,
              out: Annotated[Path | None, typer.Option(
                  help="Decision file to write (default: HOME/decision.yaml); text models go beside it.")] = None,
              tune: Annotated[Path | None, typer.Option(
                  "--tune-cuts", help="A labelled folder (real pages) to choose per-pattern cuts on.")
              ] = None,
              weigh: Annotated[list[Path] | None, typer.Option(
                  "--weigh", help="A labelled folder of real pages the patterns' own weights are refitted on; "
                                  "their text never enters a model. Repeat the option for each folder (one per "
                                  "collection): the refit is then also scored holding each folder out.")] = None,
              vocabulary: Annotated[list[Path] | None, typer.Option(
                  "--text-only", help="A labelled folder of written pages that teaches the page text models only, "
                                      "not the decision's weights or cuts. Repeat for each folder.")] = None,
              new_pattern: Annotated[list[str] | None, typer.Option(
                  "--new-pattern", help="FOLDER=PATTERN_FILE: pages written for a pattern given only as a YAML file. "
                                        "Given any, the generic weights (for patterns without weights of their own) "
                                        "are fitted on these and their cut chosen holding each out. Repeat for each.")
              ] = None,
              ) -> None:
    """Fit the decision model (generic and per-pattern weights) on labelled folders and verdicts."""
    from loophole.calibrate import run_calibration

    settings = command_settings()
    try:
        calibrated = run_calibration(settings, folders or [], use_feedback, out, tune, weigh or [], vocabulary or [],
                                     [_folder_and_pattern(pair) for pair in new_pattern or []])
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    calibration = calibrated.decision
    typer.echo(f"decision model for {calibration.model_id}: written to {calibrated.decision_path}")
    typer.echo(f"page text models for {', '.join(sorted(calibrated.text_models.weights)) or 'no pattern'}: "
               f"written to {calibrated.text_model_path}")
    for pid, weights in calibration.patterns.items():
        typer.echo(f"  {pid:36} own weights, {weights.support} labelled evidence pages")
    typer.echo(f"  {'(any other pattern)':36} generic weights, {calibration.generic.support} labelled evidence pages, "
               f"cut {calibration.generic_cut}")
    for pid, cut in calibration.pattern_cuts.items():
        typer.echo(f"  {pid:36} cut {cut} (chosen on the --tune-cuts folder)")
    for name, value in calibration.cross_validation.items():
        typer.echo(f"  {name:48} {value:.3f}")


def _folder_and_pattern(pair: str) -> tuple[Path, Path]:
    folder, sep, pattern_file = pair.partition("=")
    if not sep or not Path(folder).is_dir() or not Path(pattern_file).is_file():
        raise ConfigError(f"--new-pattern {pair}: give FOLDER=PATTERN_FILE, an existing folder and pattern file")
    return Path(folder), Path(pattern_file)


@app.command()
def demo(port: Annotated[int, typer.Option(help="Port for the mock web; keep it fixed between runs, since "
                                               "its URLs identify the documents.")] = 8737) -> None:
    """Serve the mock web on 127.0.0.1, crawl it, run the chain and write the digest."""
    from loophole.demo import run_demo

    run_demo(command_settings(), port)


db_app = typer.Typer(help="The document store's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to the current schema (opening it does the same)."""
    from index.migrate import current_revision, head_revision, upgrade_schema
    from index.store import make_plain_engine

    settings = command_settings()
    settings.ensure_dirs()
    engine = make_plain_engine(settings.db_url)
    try:
        upgrade_schema(engine)
        with engine.connect() as conn:
            revision = current_revision(conn)
    finally:
        engine.dispose()
    typer.echo(f"schema at revision {revision} (head {head_revision()})")

cli_alerts.register(app)

if __name__ == "__main__":
    app()
