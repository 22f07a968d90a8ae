"""Search filters: which documents a search may return (source, kind, language, dates, pattern,
entity, buyer, amounts).

Kept apart from index/search.py, which loads the embedding model's libraries: a saved search's
filters are read and written by the digest job without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from index.entities import fold
from index.store import Detection, Document, Store


@dataclass
class SearchFilters:
    """Every filter is optional; dates are ISO ``YYYY-MM-DD``; amounts in the notice's currency."""

    source: str | None = None
    kind: str | None = None
    lang: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    pattern: str | None = None
    entity: str | None = None
    buyer: str | None = None
    amount_min: float | None = None
    amount_max: float | None = None

    def active(self) -> bool:
        return any(value not in (None, "") for value in self.__dict__.values())


def _amounts(fields: dict[str, Any]) -> list[float]:
    values = []
    for item in fields.get("amounts") or []:
        if isinstance(item, dict) and isinstance(item.get("amount"), int | float):
            values.append(float(item["amount"]))
    return values


def _matches_json_filters(doc: Any, filters: SearchFilters) -> bool:
    fields = doc.fields or {}
    if filters.buyer and fold(filters.buyer) not in fold(str(fields.get("buyer") or "")):
        return False
    if filters.entity:
        wanted = fold(filters.entity)
        names = [fold(str(e.get(k, ""))) for e in doc.entities or [] for k in ("id", "name", "matched")]
        if not any(wanted in name for name in names):
            return False
    if filters.amount_min is not None or filters.amount_max is not None:
        low = filters.amount_min if filters.amount_min is not None else float("-inf")
        high = filters.amount_max if filters.amount_max is not None else float("inf")
        if not any(low <= value <= high for value in _amounts(fields)):
            return False
    return True


def allowed_documents(store: Store, filters: SearchFilters) -> set[int]:
    """Ids of the documents that pass every filter (columns in SQL, JSON fields in Python)."""
    query = select(Document.id, Document.fields, Document.entities)
    for column, value in ((Document.source, filters.source), (Document.kind, filters.kind),
                          (Document.lang, filters.lang)):
        if value:
            query = query.where(column == value)
    if filters.date_from:
        query = query.where(Document.published >= filters.date_from)
    if filters.date_to:
        query = query.where(Document.published <= filters.date_to)
    if filters.pattern:
        flagged = select(Detection.doc_id).where(Detection.pattern_id == filters.pattern, Detection.flagged)
        query = query.where(Document.id.in_(flagged))
    with store.session() as session:
        return {row.id for row in session.execute(query) if _matches_json_filters(row, filters)}
