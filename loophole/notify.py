"""``loophole digest``: every subscription's digest now, outside the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from alerts.dedup import assign_groups
from alerts.delivery import DeliveryError
from alerts.digest import render
from alerts.jobs import ChannelResult, SavedSearches, collect_for, run_digest
from ground.config import Settings
from index.store import Store


def preview_digest(settings: Settings) -> str:
    """The plain-text email digest of the first subscription, without sending or recording anything."""
    store = Store(settings.db_url)
    try:
        assign_groups(store)
        sub = settings.effective_subscriptions()[0]
        searches = SavedSearches(settings, store, sub)
        return render(collect_for(settings, store, sub, "email", datetime.now(UTC), searches))[1]
    finally:
        store.close()


@dataclass
class DigestReport:
    """What every channel of every subscription delivered (a webhook's twelve alerts count too)."""

    results: list[tuple[str, ChannelResult]] = field(default_factory=list)   # (subscription, channel result)

    def count(self, kind: str = "") -> int:
        """Alerts delivered on channels of one kind (``email``, ``apprise``, ``atom``; empty: all)."""
        return sum(r.count for _, r in self._of(kind))

    def targets(self, kind: str = "") -> list[str]:
        return [r.target for _, r in self._of(kind)]

    def lines(self) -> list[str]:
        return [f"{sub}/{r.channel.split(':', 1)[0]}: {r.count} alert{'' if r.count == 1 else 's'}"
                + (f", {r.search_results} saved-search result{'' if r.search_results == 1 else 's'}"
                   if r.search_results else "") + f" -> {r.target}"
                + (" (the feed's current entries)" if r.channel == "atom" else "") for sub, r in self.results]

    def _of(self, kind: str) -> list[tuple[str, ChannelResult]]:
        return [(sub, r) for sub, r in self.results if not kind or r.channel.split(":", 1)[0] == kind]


def deliver_digest(settings: Settings, out_dir: Path | None = None) -> DigestReport:
    """Run every subscription; a failed channel raises DeliveryError and its alerts stay unsent."""
    report, errors = DigestReport(), []
    for sub in settings.effective_subscriptions():
        for result in run_digest(settings, sub.name, out_dir=out_dir).results:
            if result.error:
                errors.append(f"{sub.name}/{result.channel}: {result.error}")
            else:
                report.results.append((sub.name, result))
    if errors:
        raise DeliveryError("; ".join(errors))
    return report
