"""``loophole digest``: every subscription's digest now, outside the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alerts.dedup import assign_groups
from alerts.delivery import DeliveryError
from alerts.digest import render
from alerts.jobs import collect_for, run_digest
from index.store import Store
from loophole.config import Settings


def preview_digest(settings: Settings) -> str:
    """The plain-text email digest of the first subscription, without sending or recording anything."""
    store = Store(settings.db_url)
    try:
        assign_groups(store)
        sub = settings.effective_subscriptions()[0]
        return render(collect_for(settings, store, sub, "email", datetime.now(UTC)))[1]
    finally:
        store.close()


def deliver_digest(settings: Settings, out_dir: Path | None = None) -> tuple[str, int]:
    """Run every subscription; a failed channel raises DeliveryError and its alerts stay unsent."""
    targets, count, errors = [], 0, []
    for sub in settings.effective_subscriptions():
        run = run_digest(settings, sub.name, out_dir=out_dir)
        for result in run.results:
            if result.error:
                errors.append(f"{sub.name}/{result.channel}: {result.error}")
            elif result.channel == "email":
                targets.append(result.target)
                count += result.count
    if errors:
        raise DeliveryError("; ".join(errors))
    return ", ".join(targets) or "nowhere", count
