"""Hybrid search over chunks, grouped by document: dense (FAISS) + lexical (BM25), fused by RRF.

Why both: the multilingual dense model lets an English query find a Chinese page and the
reverse, but it blurs exact identifiers (``p4d.24xlarge``, a project number, a company
name) that BM25 matches precisely. Reciprocal rank fusion combines the two rankings
without calibrating their scores against each other. Documents are ranked by their best
passages; each result carries the passages that matched, best first, with the query's
terms marked for highlighting.

The web app, the JSON API and ``loophole search`` all call :meth:`SearchEngine.search`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from index.embed import Embedder, SharedBatches
from index.entities import fold
from index.lexical import LexicalIndex, query_terms
from index.store import Chunk, Detection, Document, Store
from index.vectors import INDEX_FILE, VectorIndex

RRF_K = 60                 # the usual constant: damps the difference between rank 1 and rank 2
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 0.8       # identifiers matter, but lexical hits across languages are mostly noise
CANDIDATES = 300           # chunks taken from each retriever before grouping
FILTERED_CANDIDATES = 3000 # with filters, more dense candidates survive the post-filter
MAX_PAGE_SIZE = 100


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


@dataclass
class Passage:
    chunk_id: int
    text: str
    score: float

    def segments(self, terms: list[str]) -> list[tuple[str, bool]]:
        return highlight(self.text, terms)


@dataclass
class SearchResult:
    doc_id: int
    url: str
    title: str
    score: float
    kind: str
    lang: str
    source: str = ""
    published: str | None = None
    dense: float | None = None
    lexical: float | None = None
    passages: list[Passage] = field(default_factory=list)

    def as_dict(self, terms: list[str] | None = None) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "url": self.url, "title": self.title, "score": round(self.score, 6),
                "kind": self.kind, "lang": self.lang, "source": self.source, "published": self.published,
                "dense": None if self.dense is None else round(self.dense, 4),
                "lexical": None if self.lexical is None else round(self.lexical, 4),
                "passages": [p.text for p in self.passages],
                "highlights": [[[text, hit] for text, hit in p.segments(terms or [])] for p in self.passages]}


@dataclass
class SearchPage:
    query: str
    terms: list[str]
    results: list[SearchResult]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "total": self.total, "page": self.page, "per_page": self.per_page,
                "results": [r.as_dict(self.terms) for r in self.results]}


def highlight(text: str, terms: Iterable[str]) -> list[tuple[str, bool]]:
    """Split text into (piece, is_match) for the query's terms, case-insensitively.

    Returned as pieces, not HTML, so the template escapes every piece of scraped text.
    """
    words = sorted({t for t in terms if t}, key=len, reverse=True)
    if not words or not text:
        return [(text, False)]
    pattern = re.compile("|".join(_term_regex(w) for w in words), re.IGNORECASE)
    pieces: list[tuple[str, bool]] = []
    last = 0
    for match in pattern.finditer(text):
        if match.start() > last:
            pieces.append((text[last:match.start()], False))
        pieces.append((match.group(0), True))
        last = match.end()
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces


def _term_regex(term: str) -> str:
    """Latin terms match whole words only ("us" must not light up in "customers"); Han terms anywhere."""
    escaped = re.escape(term)
    return rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if term.isascii() else escaped


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


def _rrf(ranked_doc_ids: list[int], weight: float) -> dict[int, float]:
    return {doc_id: weight / (RRF_K + rank) for rank, doc_id in enumerate(ranked_doc_ids, start=1)}


class SearchEngine:
    """Search over one store, its vector index and its lexical index."""

    def __init__(self, store: Store, vectors: VectorIndex, embedder: Embedder, lexical: LexicalIndex,
                 index_dir: Path | None = None) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.lexical = lexical
        self.index_dir = index_dir
        self._vectors_mtime = self._index_mtime()
        # Concurrent searches (the web server's threads) share embedding calls and FAISS searches.
        self._dense = SharedBatches(self._dense_batch)

    def _index_mtime(self) -> float:
        path = self.index_dir / INDEX_FILE if self.index_dir else None
        return path.stat().st_mtime if path and path.exists() else 0.0

    def refresh(self) -> None:
        """Pick up what another process (a crawl) indexed since: a newer FAISS file, new chunks."""
        mtime = self._index_mtime()
        if self.index_dir and mtime != self._vectors_mtime:
            self.vectors = VectorIndex.load(self.index_dir, self.embedder.model_id, self.embedder.dimension)
            self._vectors_mtime = mtime
        self.lexical.sync(self.store)

    def search(self, query: str, filters: SearchFilters | None = None, page: int = 1, per_page: int = 10,
               passages_per_doc: int = 3) -> SearchPage:
        """One page of documents, best first; an empty query lists the filtered documents, newest first."""
        filters = filters or SearchFilters()
        page, per_page = max(1, page), max(1, min(per_page, MAX_PAGE_SIZE))
        allowed = allowed_documents(self.store, filters) if filters.active() else None
        terms = query_terms(query)
        if not query.strip():
            return self._browse(query, allowed, page, per_page)
        chunk_hits = self._retrieve(query, allowed)
        fused = self._fuse(chunk_hits)
        ranked = list(fused)
        window = ranked[(page - 1) * per_page: page * per_page]
        results = self._results(window, fused, chunk_hits, passages_per_doc)
        return SearchPage(query, terms, results, len(ranked), page, per_page)

    def _retrieve(self, query: str, allowed: set[int] | None) -> dict[str, list[tuple[int, int, float]]]:
        """Per retriever: (chunk id, doc id, score) best first, restricted to allowed documents."""
        dense: list[tuple[int, float]] = []
        if len(self.vectors):
            k = FILTERED_CANDIDATES if allowed is not None else CANDIDATES
            scores, ids = self._dense((query, k))
            dense = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
        lexical = self.lexical.search(query, CANDIDATES, allowed)
        doc_of = self._doc_ids([cid for cid, _ in dense + lexical])
        hits = {}
        for name, found in (("dense", dense), ("lexical", lexical)):
            hits[name] = [(cid, doc_of[cid], score) for cid, score in found
                          if cid in doc_of and (allowed is None or doc_of[cid] in allowed)]
        return hits

    def _dense_batch(self, queries: list[tuple[str, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(scores, chunk ids) per (query, k): one embedding call and one FAISS search for the lot."""
        scores, ids = self.vectors.search(self.embedder.encode([text for text, _ in queries]),
                                          k=max(k for _, k in queries))
        return [(scores[row, :k], ids[row, :k]) for row, (_, k) in enumerate(queries)]

    def _doc_ids(self, chunk_ids: list[int]) -> dict[int, int]:
        if not chunk_ids:
            return {}
        with self.store.session() as session:
            rows = session.execute(select(Chunk.id, Chunk.doc_id).where(Chunk.id.in_(set(chunk_ids))))
            return dict(rows.all())   # rows are (id, doc_id) pairs

    @staticmethod
    def _fuse(hits: dict[str, list[tuple[int, int, float]]]) -> dict[int, float]:
        """Document scores: weighted RRF of each retriever's document order (by best chunk)."""
        fused: dict[int, float] = {}
        for name, weight in (("dense", DENSE_WEIGHT), ("lexical", LEXICAL_WEIGHT)):
            order = list(dict.fromkeys(doc_id for _, doc_id, _ in hits[name]))
            for doc_id, score in _rrf(order, weight).items():
                fused[doc_id] = fused.get(doc_id, 0.0) + score
        return dict(sorted(fused.items(), key=lambda item: item[1], reverse=True))

    def _results(self, doc_ids: list[int], fused: dict[int, float],
                 hits: dict[str, list[tuple[int, int, float]]], passages_per_doc: int) -> list[SearchResult]:
        chunk_score: dict[int, float] = {}
        best: dict[str, dict[int, float]] = {"dense": {}, "lexical": {}}
        wanted, window = set(), set(doc_ids)
        for name, weight in (("dense", DENSE_WEIGHT), ("lexical", LEXICAL_WEIGHT)):
            for rank, (cid, doc_id, score) in enumerate(hits[name], start=1):
                chunk_score[cid] = chunk_score.get(cid, 0.0) + weight / (RRF_K + rank)
                best[name].setdefault(doc_id, score)
                if doc_id in window:
                    wanted.add(cid)
        docs, chunks = self._shown(doc_ids, wanted)
        results = []
        for doc_id in doc_ids:
            doc = docs.get(doc_id)
            if doc is None:
                continue
            mine = sorted(chunks.get(doc_id, []), key=lambda c: (-chunk_score[c.id], c.id))[:passages_per_doc]
            results.append(SearchResult(
                doc.id, doc.url, doc.title, fused[doc_id], doc.kind, doc.lang, doc.source,
                doc.published, best["dense"].get(doc_id), best["lexical"].get(doc_id),
                [Passage(c.id, c.text, chunk_score[c.id]) for c in mine]))
        return results

    def _shown(self, doc_ids: list[int], chunk_ids: set[int]) -> tuple[dict[int, Any], dict[int, list[Any]]]:
        """The documents' and passages' shown columns only: a whole Document row carries the page's
        full text and JSON fields, and loading ORM objects cost a third of a search under load."""
        with self.store.session() as session:
            docs = {row.id: row for row in session.execute(
                select(Document.id, Document.url, Document.title, Document.kind, Document.lang, Document.source,
                       Document.published).where(Document.id.in_(doc_ids)))}
            chunks: dict[int, list[Any]] = {}
            for row in session.execute(select(Chunk.id, Chunk.doc_id, Chunk.text).where(Chunk.id.in_(chunk_ids))):
                chunks.setdefault(row.doc_id, []).append(row)
        return docs, chunks

    def _browse(self, query: str, allowed: set[int] | None, page: int, per_page: int) -> SearchPage:
        statement = select(Document).order_by(Document.published.desc(), Document.id.desc())
        if allowed is not None:
            statement = statement.where(Document.id.in_(allowed))
        with self.store.session() as session:
            docs = list(session.scalars(statement.offset((page - 1) * per_page).limit(per_page)))
            total = len(allowed) if allowed is not None else session.query(Document).count()
        results = [SearchResult(d.id, d.url, d.title, 0.0, d.kind, d.lang, d.source, d.published) for d in docs]
        return SearchPage(query, [], results, total, page, per_page)

    def similar(self, doc_id: int, limit: int = 5) -> list[SearchResult]:
        """Documents nearest to this one's mean passage vector (another stage, a copy, a sibling)."""
        with self.store.session() as session:
            chunk_ids = list(session.scalars(select(Chunk.id).where(Chunk.doc_id == doc_id)))
        vectors = []
        for cid in chunk_ids:
            try:
                vectors.append(self.vectors.reconstruct(cid))
            except (RuntimeError, IndexError):
                continue
        if not vectors:
            return []
        mean = np.mean(vectors, axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        scores, ids = self.vectors.search(mean[None, :].astype(np.float32), k=CANDIDATES)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        doc_of = self._doc_ids([cid for cid, _ in found])
        order: dict[int, float] = {}
        for cid, score in found:
            other = doc_of.get(cid)
            if other is not None and other != doc_id:
                order.setdefault(other, score)
        top = list(order)[:limit]
        with self.store.session() as session:
            docs = {d.id: d for d in session.scalars(select(Document).where(Document.id.in_(top)))}
        return [SearchResult(d.id, d.url, d.title, order[d.id], d.kind, d.lang, d.source, d.published)
                for d in (docs.get(i) for i in top) if d is not None]


def engine_for(settings: Any, store: Store | None = None, vectors: VectorIndex | None = None) -> SearchEngine:
    """The engine for a data directory, reusing a Monitor's store and vectors when given."""
    from index.embed import get_embedder

    embedder = get_embedder(settings.embedding.model, settings.embedding.batch_size)
    store = store or Store(settings.db_url)
    if vectors is None:
        vectors = VectorIndex.load(settings.index_dir, embedder.model_id, embedder.dimension)
    engine = SearchEngine(store, vectors, embedder, LexicalIndex(settings.index_dir), settings.index_dir)
    engine.lexical.sync(store)
    return engine
