"""``loophole run`` (the scheduler service) and ``loophole alerts ...`` (export, history)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from ground.config import MAX_ROW_ID
from loophole.cli_common import command_settings, fail

alerts_app = typer.Typer(help="Machine-readable alerts and their history.", no_args_is_help=True)


def _since(value: str | None, option: str = "--since") -> datetime | None:
    """A date or ISO time given on the command line (UTC unless it says otherwise)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError as exc:
            raise fail(f"{option} {value!r}: use a date (2026-01-31) or an ISO time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@alerts_app.command("export")
def export(fmt: Annotated[str, typer.Option("--format", help="json, jsonl or csv.")] = "jsonl",
           since: Annotated[str | None, typer.Option("--since", help="Only groups created or updated since "
                                                                       "this date/time (UTC unless given).")] = None,
           subscription: Annotated[str | None, typer.Option("--subscription", help="Apply its filters.")] = None,
           out: Annotated[Path | None, typer.Option("--out", help="Write to FILE instead of stdout.")] = None,
           ) -> None:
    """Alert groups with all their sources, stages and history, for trust-and-safety pipelines."""
    from alerts.export import dumps, export_records
    from ground.config import ConfigError
    from index.store import Store

    if fmt not in ("json", "jsonl", "csv"):
        raise fail(f"--format {fmt!r}: use json, jsonl or csv")
    settings = command_settings()
    try:
        sub = settings.subscription(subscription) if subscription else None
    except ConfigError as exc:
        raise fail(f"{exc}") from exc
    store = Store(settings.db_url)
    try:
        text = dumps(export_records(store, _since(since), sub, settings.public_base_url), fmt)  # type: ignore[arg-type]
    finally:
        store.close()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@alerts_app.command("history")
def show_history(alert_id: Annotated[int, typer.Argument(help="An alert id (any member of a group).", min=1,
                                                         max=MAX_ROW_ID)]) -> None:
    """Everything that happened to one alert group: created, updated, sent where and when, feedback."""
    from sqlalchemy import select

    from alerts.views import history
    from index.store import Alert, Store

    store = Store(command_settings().db_url)
    try:
        with store.session() as session:
            head = session.scalar(select(Alert.group_id).where(Alert.id == alert_id))
            if head is None:
                raise fail(f"no grouped alert {alert_id}")
            typer.echo(json.dumps(history(session, [head])[head], ensure_ascii=False, indent=2))
    finally:
        store.close()


@alerts_app.command("snooze")
def snooze_cmd(alert_id: Annotated[int, typer.Argument(help="An alert id (any member of a group).", min=1,
                                                       max=MAX_ROW_ID)],
               until: Annotated[str | None, typer.Option("--until", help="A date or ISO time (UTC unless given).")]
               = None,
               days: Annotated[float | None, typer.Option("--days", min=0.001, max=3650, help="From now.")] = None,
               clear: Annotated[bool, typer.Option("--clear", help="Lift the snooze.")] = False) -> None:
    """Withhold an alert group from every channel (email, webhooks, Atom) until a time."""
    from datetime import timedelta

    from alerts.triage import TriageError, snooze
    from index.store import Store

    if sum((until is not None, days is not None, clear)) != 1:
        raise fail("give exactly one of --until, --days or --clear")
    when = None if clear else (_since(until, "--until") if until else datetime.now(UTC) + timedelta(days=days or 0))
    settings = command_settings()
    settings.ensure_dirs()
    store = Store(settings.db_url)
    try:
        snooze(store, alert_id, when)
    except TriageError as exc:
        raise fail(f"{exc}") from exc
    finally:
        store.close()
    typer.echo(f"alert {alert_id}: " + (f"snoozed until {when.isoformat()}" if when else "snooze lifted"))


def run(dry_run: Annotated[bool, typer.Option("--dry-run", help="Print each job's next run and exit.")] = False,
        ) -> None:
    """The service: crawls on each source's cron, digests at each subscription's local time (SIGTERM stops it)."""
    from loophole.service import next_runs, run_service

    settings = command_settings()
    if dry_run:
        typer.echo(json.dumps(next_runs(settings), indent=2))
        return
    run_service(settings)


def register(app: typer.Typer) -> None:
    """Attach these commands to the main ``loophole`` app."""
    app.command("run")(run)
    app.add_typer(alerts_app, name="alerts")
