"""Saved searches: a query an analyst keeps, whose new results arrive in a subscription's digest
like alerts.

Why: a pattern alert only fires for what the library describes; an analyst following one buyer,
one reseller or one kind of purchase needs the pages that answer *their* question as they come.
A saved search is run again at each digest; a page that enters its first ``top`` results and
that the channel has not had is new, and is sent once. The pages there when it was saved are its
baseline (they were on the analyst's screen), so the first digest brings only what came after.
Sends are recorded like alert sends: through the outbox for email, after delivery for the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alerts.views import safe_link
from index.filters import SearchFilters
from index.ranking import VIEWS
from index.store import Document, SavedSearch, SavedSearchHit, Store

if TYPE_CHECKING:   # the search engine (and the model's libraries) load only where a search runs
    from index.search import SearchEngine, SearchResult

BASELINE = "*"              # the channel of the pages a search showed when it was saved
MAX_TOP = 50
_NAME = re.compile(r"^[^\x00-\x1f]{1,64}$")


class SavedSearchError(ValueError):
    """A saved search that cannot be made or found; the message says why."""


@dataclass
class SearchNews:
    """One saved search's new results for one digest."""

    search_id: int
    name: str
    query: str
    view: str
    results: list[SearchResult] = field(default_factory=list)
    base_url: str = ""

    def link(self, result: SearchResult) -> str | None:
        return safe_link(result.url)

    def document_link(self, result: SearchResult) -> str | None:
        return safe_link(f"{self.base_url}/documents/{result.doc_id}") if self.base_url else None

    @property
    def hits(self) -> list[tuple[int, int]]:
        return [(self.search_id, result.doc_id) for result in self.results]


def filters_dict(filters: SearchFilters) -> dict[str, Any]:
    return {key: value for key, value in filters.__dict__.items() if value not in (None, "")}


def filters_of(stored: dict[str, Any]) -> SearchFilters:
    known = set(SearchFilters.__dataclass_fields__)
    return SearchFilters(**{key: value for key, value in (stored or {}).items() if key in known})


def save_search(store: Store, engine: SearchEngine, owner: str, name: str, query: str, filters: SearchFilters,
                view: str, subscription: str, top: int = 10) -> SavedSearch:
    """Keep the search and mark what it shows now as seen (its baseline)."""
    name = name.strip()
    if not _NAME.match(name):
        raise SavedSearchError("name must be 1 to 64 characters, without control characters")
    if not query.strip() and not filters.active():
        raise SavedSearchError("a saved search needs a query or a filter")
    if view not in VIEWS:
        raise SavedSearchError(f"view must be one of {', '.join(VIEWS)}")
    if not 1 <= top <= MAX_TOP:
        raise SavedSearchError(f"top must be between 1 and {MAX_TOP}")
    baseline = run_search(engine, query, filters, view, top)
    try:
        with store.session() as session:
            row = SavedSearch(name=name, owner=owner, query=query.strip(), filters=filters_dict(filters), view=view,
                              subscription=subscription, top=top)
            session.add(row)
            session.flush()
            session.add_all(SavedSearchHit(search_id=row.id, doc_id=result.doc_id, channel=BASELINE)
                            for result in baseline)
    except IntegrityError as exc:
        raise SavedSearchError(f"{owner} already has a saved search named {name!r}") from exc
    return row


def run_search(engine: SearchEngine, query: str, filters: SearchFilters, view: str, top: int) -> list[SearchResult]:
    return engine.search(query, filters, per_page=top, passages_per_doc=1, view=view).results


def list_searches(store: Store, owner: str | None = None, subscription: str | None = None) -> list[SavedSearch]:
    query = select(SavedSearch).order_by(SavedSearch.owner, SavedSearch.name)
    if owner is not None:
        query = query.where(SavedSearch.owner == owner)
    if subscription is not None:
        query = query.where(SavedSearch.subscription == subscription)
    with store.session() as session:
        return list(session.scalars(query))


def remove_search(store: Store, search_id: int, owner: str | None = None) -> None:
    """Delete a saved search (``owner``: only if it is theirs); its sends go with it."""
    with store.session() as session:
        row = session.get(SavedSearch, search_id)
        if row is None or (owner is not None and row.owner != owner):
            raise SavedSearchError(f"no saved search {search_id}" + (f" of {owner}" if owner else ""))
        session.delete(row)


def new_results(store: Store, engine: SearchEngine, subscription: str, channel: str,
                base_url: str | None = None) -> list[SearchNews]:
    """Each of the subscription's saved searches with the results the channel has not had."""
    news = []
    for saved in list_searches(store, subscription=subscription):
        found = run_search(engine, saved.query, filters_of(saved.filters), saved.view, saved.top)
        seen = _seen(store, saved.id, channel)
        fresh = [result for result in found if result.doc_id not in seen]
        if fresh:
            news.append(SearchNews(saved.id, saved.name, saved.query, saved.view, fresh, (base_url or "").rstrip("/")))
    return news


def _seen(store: Store, search_id: int, channel: str) -> set[int]:
    with store.session() as session:
        return set(session.scalars(select(SavedSearchHit.doc_id).where(
            SavedSearchHit.search_id == search_id, SavedSearchHit.channel.in_((channel, BASELINE)))))


def record_hits(store: Store, hits: Iterable[Sequence[int]], channel: str, now: datetime | None = None) -> None:
    """Mark (saved search, document) pairs delivered on a channel; idempotent (a recovered send
    records again what a crash left unrecorded)."""
    now = now or datetime.now(UTC)
    with store.session() as session:
        for search_id, doc_id in hits:
            exists = session.scalar(select(SavedSearchHit.id).where(
                SavedSearchHit.search_id == search_id, SavedSearchHit.doc_id == doc_id,
                SavedSearchHit.channel == channel))
            present = session.get(SavedSearch, search_id) is not None and session.get(Document, doc_id) is not None
            if exists is None and present:
                session.add(SavedSearchHit(search_id=search_id, doc_id=doc_id, channel=channel, sent_at=now))
