"""``loophole lists ...`` (load and show the restriction lists) and ``loophole screen NAME``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ground.config import ConfigError
from loophole.cli_common import command_settings, fail

lists_app = typer.Typer(help="Official restriction lists (Consolidated Screening List, Federal Register rules).",
                        no_args_is_help=True)


@lists_app.command("update")
def update(files: Annotated[list[Path], typer.Argument(help="CSL .json/.csv, Federal Register .xml, alias .yaml.")],
           no_embedding: Annotated[bool, typer.Option("--no-embedding", help="Skip the embedding method "
                                                                             "(no model is loaded).")] = False,
           ) -> None:
    """Load the files as a new version of the lists (the previous ones are kept) and screen every
    stored document's parties against it. One bad file refuses the whole batch."""
    from index.embed import get_embedder
    from index.lists import ListFileError
    from index.restricted import update_lists
    from index.store import Store

    settings = command_settings()
    store = Store(settings.db_url)
    try:
        encoder = None if no_embedding else get_embedder(settings.embedding.model, settings.embedding.batch_size)
        report = update_lists(store, files, encoder, settings.screening)
    except (ListFileError, ConfigError) as exc:
        typer.echo(f"refused, the lists in force are unchanged:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    for name in report.unknown_aliases:
        typer.echo(f"warning: alias for {name!r}: no loaded entry has that name", err=True)
    typer.echo(f"lists version {report.version}: {report.entries} entries from {len(report.files)} files; "
               f"{report.documents} documents screened, {report.flagged} with a listed party")


@lists_app.command("versions")
def show_versions(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every version loaded, newest last (the last is in force)."""
    from index.restricted import versions
    from index.store import Store

    store = Store(command_settings().db_url)
    try:
        rows = versions(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        files = ", ".join(f"{Path(f['file']).name} ({f['entries']})" for f in row["files"])
        typer.echo(f"{row['version']}\t{row['loaded_at']}\t{row['entries']} entries\t{files}")


def screen(name: Annotated[str, typer.Argument(help="An organisation's name, in Chinese or English.")],
           as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of matches.")] = False) -> None:
    """Match one name against the lists in force: best first; "possible" is a lead, not a fact."""
    from index.embed import get_embedder
    from index.restricted import screener_for
    from index.store import Store

    settings = command_settings()
    store = Store(settings.db_url)
    try:
        screener = screener_for(store, get_embedder(settings.embedding.model, settings.embedding.batch_size),
                                settings.screening)
    finally:
        store.close()
    if screener is None:
        raise fail("no lists loaded (loophole lists update FILE...)")
    matches = [m.as_dict() for m in screener.screen(name)]
    if as_json:
        typer.echo(json.dumps(matches, ensure_ascii=False, indent=2))
        return
    if not matches:
        typer.echo(f"no match on lists version {screener.version}")
    for m in matches:
        typer.echo(f"{m['strength']:8} {m['score']:.3f} {m['method']:15} [{m['list']}] {m['entry_name']}"
                   f" (as {m['matched_name']})")


def register(app: typer.Typer) -> None:
    app.add_typer(lists_app, name="lists")
    app.command("screen")(screen)
