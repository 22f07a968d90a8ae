"""Snoozing: an analyst withholds an alert group from every channel for a while.

A verdict (confirm, dismiss) is recorded by ``index.feedback``, because it also teaches the
detector; a snooze only defers delivery, so it lives here. Delivery reads both through
``alerts.views.deliverable``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from index.store import Alert, Store


class TriageError(LookupError):
    """An alert that cannot be snoozed (unknown id, a time already past)."""


def snooze(store: Store, alert_id: int, until: datetime | None, now: datetime | None = None) -> Alert:
    """Withhold the alert's group until ``until`` (None lifts the snooze); the event joins its history."""
    now = now or datetime.now(UTC)
    if until is not None and until <= now:
        raise TriageError(f"snooze until {until.isoformat()} is not in the future")
    with store.session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise TriageError(f"no alert with id {alert_id}")
        alert.snoozed_until = until
        event = {"event": "snooze" if until else "unsnooze", "at": now.isoformat()}
        if until is not None:
            event["until"] = until.isoformat()
        alert.history = [*alert.history, event]
        return alert
