"""Machine-readable alerts for trust-and-safety pipelines: JSON, JSON Lines or CSV.

One record per near-duplicate group (its head), with every source and stage it was seen at
and its full history (created, updated, sent where and when, feedback).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import or_

from alerts.dedup import assign_groups
from alerts.views import AlertView, heads_query, history, load_views, matches
from ground.config import Subscription
from index.store import Alert, Store

Format = Literal["json", "jsonl", "csv"]
CSV_COLUMNS = ["id", "revision", "pattern", "score", "title", "url", "source", "date", "stage", "buyer", "vendor",
               "amount", "sentence", "entities", "listed_parties", "sources", "stages", "member_urls",
               "snapshot_sha256", "saved_copy", "created_at", "updated_at", "history"]


def record(view: AlertView, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": view.id, "revision": view.revision, "pattern": view.pattern_id, "score": round(view.score, 4),
        "title": view.title, "url": view.url, "source": view.source, "date": view.date, "stage": view.stage,
        "buyer": view.buyer, "vendor": view.vendor, "amount": view.amount, "sentence": view.sentence,
        "entities": view.entities, "listed_parties": view.parties, "sources": view.sources, "stages": view.stages,
        "members": [{"alert_id": m.alert_id, "source": m.source, "url": m.url, "stage": m.stage, "date": m.date,
                     "title": m.title} for m in view.members],
        "snapshot_sha256": view.snapshot, "saved_copy": view.saved_copy,
        "created_at": view.created_at.isoformat(),
        "updated_at": view.updated_at.isoformat() if view.updated_at else None,
        "history": events,
    }


def records_for(store: Store, views: list[AlertView]) -> list[dict[str, Any]]:
    with store.session() as session:
        events = history(session, [v.id for v in views])
    return [record(view, events.get(view.id, [])) for view in views]


def export_records(store: Store, since: datetime | None = None, subscription: Subscription | None = None,
                   public_base_url: str | None = None) -> list[dict[str, Any]]:
    """Groups created or updated since ``since``, oldest first, optionally through a subscription's filters."""
    assign_groups(store)
    query = heads_query()
    if since is not None:
        query = query.where(or_(Alert.created_at >= since, Alert.updated_at >= since))
    with store.session() as session:
        views = load_views(session, query, public_base_url)
    if subscription is not None:
        views = [v for v in views if matches(v, subscription)]
    views.sort(key=lambda v: (v.updated_at or v.created_at, v.id))
    return records_for(store, views)


def _cell(value: Any) -> Any:
    """Scraped text opened in a spreadsheet must not become a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(rec: dict[str, Any]) -> dict[str, Any]:
    row = {key: rec.get(key) for key in CSV_COLUMNS}
    for key in ("entities", "sources", "stages"):
        row[key] = "; ".join(rec[key])
    row["member_urls"] = " ".join(m["url"] for m in rec["members"])
    row["listed_parties"] = "; ".join(f"{p['strength']}: {p['party']} = [{p['list']}] {p['entry_name']} "
                                      f"({p['method']} {p['score']:.2f})" for p in rec["listed_parties"])
    row["history"] = json.dumps(rec["history"], ensure_ascii=False)
    return {key: _cell(value) for key, value in row.items()}


def dumps(records: list[dict[str, Any]], fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(r) for r in records)
    return buffer.getvalue()
