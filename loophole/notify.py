"""Digest job: collect unsent alerts, render, deliver through the outbox (alerts/outbox.py), mark sent."""

from __future__ import annotations

from pathlib import Path

from alerts.digest import Digest, build_message, collect, render
from alerts.outbox import recover, send_with_outbox
from index.patterns import load_library
from index.store import Store
from loophole.config import Settings


def _collect(settings: Settings, store: Store) -> Digest:
    titles = {p.id: p.title for p in load_library(settings.pattern_files).patterns}
    return collect(store, titles, settings.digest.max_items_per_pattern)


def preview_digest(settings: Settings) -> str:
    store = Store(settings.db_url)
    try:
        return render(_collect(settings, store))[1]
    finally:
        store.close()


def deliver_digest(settings: Settings, out_dir: Path | None = None) -> tuple[str, int]:
    """A failed delivery raises DeliveryError before anything is marked sent."""
    store = Store(settings.db_url)
    try:
        recover(settings, store)  # finish a send a crash interrupted before starting a new one
        digest = _collect(settings, store)
        message = build_message(digest, settings.smtp.sender, settings.smtp.recipients, settings.digest.subject_prefix)
        where = send_with_outbox(settings, store, message, digest.alert_ids, out_dir)
        return where, len(digest.items)
    finally:
        store.close()
