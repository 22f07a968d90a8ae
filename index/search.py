"""Hybrid search, evidence first: dense passages (FAISS) and bilingual BM25 over pages, fused by
reciprocal rank, then ranked with what each page is (index/ranking.py).

Why both retrievers: the multilingual dense model lets an English query find a Chinese page and
the reverse, but it blurs exact identifiers (``p4d.24xlarge``, a project number, a company name)
that BM25 matches precisely; and BM25 reaches the other language through the watchlist's aliases
and the search vocabulary (index/query.py). Ranks, not scores, are fused, so neither needs
calibrating against the other. Each result carries the passages that matched, best first, with
the query's words (and their equivalents) marked for highlighting.

The web app, the JSON API, ``loophole search`` and saved searches all call
:meth:`SearchEngine.search` (or :meth:`SearchEngine.more_like`, seeded by a document or an alert).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from sqlalchemy import func, select

from index.embed import Embedder, SharedBatches
from index.entities import fold
from index.filters import SearchFilters, allowed_documents
from index.lexical import LexicalIndex, match_expression, query_terms
from index.query import Expansion, QueryExpander
from index.ranking import VIEWS, DocumentSignals, PatternAffinity, load_signals, rank, relevance, signals_state
from index.store import Chunk, Detection, Document, Store
from index.vectors import INDEX_FILE, VectorIndex

CANDIDATES = 300           # chunks (dense) and pages (keyword) taken from each retriever
FILTERED_CANDIDATES = 3000 # with filters, more dense candidates survive the post-filter
MAX_PAGE_SIZE = 100
QUERY_CACHE = 2048         # query vectors kept: analysts repeat and page through queries
RESULT_CACHE = 512         # result pages kept until the next change to the index or the signals
SEED_TEXT_CHARS = 600      # of a "more like this" page's title and decisive lines, as keywords
COSINE_DECIMALS = 5        # passages closer than this are tied and ordered by id (see _stable_order)


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
    patterns: list[str] = field(default_factory=list)    # patterns the page is flagged for

    def as_dict(self, terms: list[str] | None = None) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "url": self.url, "title": self.title, "score": round(self.score, 6),
                "kind": self.kind, "lang": self.lang, "source": self.source, "published": self.published,
                "dense": None if self.dense is None else round(self.dense, 4),
                "lexical": None if self.lexical is None else round(self.lexical, 4),
                "patterns": self.patterns, "passages": [p.text for p in self.passages],
                "highlights": [[[text, hit] for text, hit in p.segments(terms or [])] for p in self.passages]}


@dataclass
class SearchPage:
    query: str
    terms: list[str]
    results: list[SearchResult]
    total: int
    page: int
    per_page: int
    view: str = "evidence"
    like: int | None = None          # the seed document of a "more like this" search
    _dict: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _json: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer; made once per page (a cached page is asked again and again)."""
        if self._dict is None:
            self._dict = {"query": self.query, "view": self.view, "like": self.like, "total": self.total,
                          "page": self.page, "per_page": self.per_page,
                          "results": [r.as_dict(self.terms) for r in self.results]}
        return self._dict

    def as_json(self) -> bytes:
        """:meth:`as_dict` as UTF-8 JSON, made once per page."""
        if self._json is None:
            self._json = json.dumps(self.as_dict(), ensure_ascii=False).encode("utf-8")
        return self._json


@dataclass
class Seed:
    """What a search starts from: a query's text, or a page (and the alert) for "more like this"."""

    text: str
    vector: np.ndarray | None = None
    chunks: list[tuple[int, float]] = field(default_factory=list)   # dense (chunk id, cosine), best first
    affinity: dict[str, float] | None = None                        # None: read it from the vector
    exclude: int | None = None


def highlight(text: str, terms: Iterable[str]) -> list[tuple[str, bool]]:
    """Split text into (piece, is_match) for the query's terms, case-insensitively.

    Returned as pieces, not HTML, so the template escapes every piece of scraped text.
    """
    lowered = text.lower()
    words = tuple(sorted({t for t in terms if t and t.lower() in lowered}, key=lambda w: (-len(w), w)))
    if not words or not text:
        return [(text, False)]
    pattern = _terms_pattern(words)
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


@lru_cache(maxsize=256)
def _terms_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled pattern per set of terms: a page of results highlights thirty passages with it."""
    return re.compile("|".join(_term_regex(w) for w in words), re.IGNORECASE)


def _term_regex(term: str) -> str:
    """Latin terms match whole words only ("us" must not light up in "customers"); Han terms anywhere."""
    escaped = re.escape(term)
    return rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if term.isascii() else escaped


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map (query vectors, result pages)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class SearchEngine:
    """Search over one store, its vector index, its lexical index and the pages' signals."""

    def __init__(self, store: Store, vectors: VectorIndex, embedder: Embedder, lexical: LexicalIndex,
                 index_dir: Path | None = None, expander: QueryExpander | None = None,
                 affinity: PatternAffinity | None = None) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.lexical = lexical
        self.index_dir = index_dir
        self.expander = expander
        self.affinity = affinity
        self._vectors_mtime = self._index_mtime()
        self._cache: _Lru[str, np.ndarray] = _Lru(QUERY_CACHE)
        self._pages: _Lru[tuple[Any, ...], SearchPage] = _Lru(RESULT_CACHE)
        self._signals: DocumentSignals | None = None
        self._chunk_docs: dict[int, int] = {}
        self._chunks_state: tuple[Any, ...] = ()
        # Concurrent searches (the web server's threads) share embedding calls and FAISS searches.
        self._dense = SharedBatches(self._dense_batch)

    def _index_mtime(self) -> float:
        path = self.index_dir / INDEX_FILE if self.index_dir else None
        return path.stat().st_mtime if path and path.exists() else 0.0

    def refresh(self) -> None:
        """Pick up what another process (a crawl) stored since: a newer FAISS file, new chunks,
        new detections and verdicts. Cached result pages are dropped when anything changed."""
        changed = False
        mtime = self._index_mtime()
        if self.index_dir and mtime != self._vectors_mtime:
            self.vectors = VectorIndex.load(self.index_dir, self.embedder.model_id, self.embedder.dimension)
            self._vectors_mtime, changed = mtime, True
        changed |= self.lexical.sync(self.store) > 0
        changed |= self._load_chunk_docs()
        if self._signals is not None and self._signals.state != signals_state(self.store):
            self._signals, changed = load_signals(self.store), True
        if changed:
            self._pages.clear()

    def signals(self) -> DocumentSignals:
        if self._signals is None:
            self._signals = load_signals(self.store)
        return self._signals

    # -- searching -------------------------------------------------------------------------------

    def search(self, query: str, filters: SearchFilters | None = None, page: int = 1, per_page: int = 10,
               passages_per_doc: int = 3, view: str = "evidence") -> SearchPage:
        """One page of documents, best first; an empty query lists the filtered documents, newest first.
        ``view`` is "evidence" (primary sources and flagged pages first) or "everything" (relevance alone)."""
        filters = filters or SearchFilters()
        page, per_page, view = max(1, page), max(1, min(per_page, MAX_PAGE_SIZE)), _view(view)
        key = _search_key(query, filters, page, per_page, passages_per_doc, view)
        cached = self._pages.get(key)
        if cached is not None:
            return cached
        allowed = allowed_documents(self.store, filters) if filters.active() else None
        if not query.strip():
            found = self._browse(query, allowed, page, per_page, view)
        else:
            vector, chunks = self._dense((query, FILTERED_CANDIDATES if allowed is not None else CANDIDATES))
            found = self._ranked(Seed(query, vector, chunks), allowed, page, per_page, passages_per_doc, view)
        self._pages.put(key, found)
        return found

    def cached(self, query: str, filters: SearchFilters | None = None, page: int = 1, per_page: int = 10,
               passages_per_doc: int = 3, view: str = "evidence") -> SearchPage | None:
        """The page :meth:`search` would answer, if it is cached (no I/O: safe on an event loop)."""
        page, per_page = max(1, page), max(1, min(per_page, MAX_PAGE_SIZE))
        return self._pages.get(_search_key(query, filters or SearchFilters(), page, per_page, passages_per_doc, view))

    def more_like(self, doc_id: int, filters: SearchFilters | None = None, page: int = 1, per_page: int = 10,
                  view: str = "evidence", pattern: str | None = None, sentence: str = "") -> SearchPage:
        """Pages like one document: nearest to its passages' mean vector and sharing its title's and
        decisive lines' words, ranked as a search is. Seeded by an alert, ``pattern`` and its
        ``sentence`` say what the page is evidence of; else the page's own flags do."""
        filters = filters or SearchFilters()
        page, per_page, view = max(1, page), max(1, min(per_page, MAX_PAGE_SIZE)), _view(view)
        key = ("like", doc_id, _filter_key(filters), page, per_page, view, pattern, sentence)
        cached = self._pages.get(key)
        if cached is not None:
            return cached
        allowed = allowed_documents(self.store, filters) if filters.active() else None
        seed = self._seed(doc_id, pattern, sentence, FILTERED_CANDIDATES if allowed is not None else CANDIDATES)
        found = (self._ranked(seed, allowed, page, per_page, 2, view) if seed is not None
                 else SearchPage("", [], [], 0, page, per_page, view))
        found.like = doc_id
        self._pages.put(key, found)
        return found

    def _seed(self, doc_id: int, pattern: str | None, sentence: str, k: int) -> Seed | None:
        with self.store.session() as session:
            doc = session.get(Document, doc_id)
            chunk_ids = list(session.scalars(select(Chunk.id).where(Chunk.doc_id == doc_id)))
            decisive = sentence or " ".join(session.scalars(
                select(Detection.sentence).where(Detection.doc_id == doc_id, Detection.flagged)))
        if doc is None:
            return None
        vector = self._mean_vector(chunk_ids)
        chunks: list[tuple[int, float]] = []
        if vector is not None:
            scores, ids = self.vectors.search(vector[None, :], k=k)
            chunks = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        flags = {pattern: 1.0} if pattern else dict(self.signals().evidence.get(doc_id, {}))
        text = f"{doc.title} {decisive}".strip()[:SEED_TEXT_CHARS]
        return Seed(text, vector, chunks, _normalised(flags) or None, exclude=doc_id)

    def _ranked(self, seed: Seed, allowed: set[int] | None, page: int, per_page: int, passages_per_doc: int,
                view: str) -> SearchPage:
        expansion = self.expander.expand(seed.text) if self.expander else Expansion((), ())
        own = query_terms(seed.text)
        match = match_expression(own, expansion.extra)
        dense_hits = self._chunk_hits(seed.chunks, allowed, seed.exclude)
        keyword = [(doc_id, score) for doc_id, score in self.lexical.documents(match, CANDIDATES, allowed)
                   if doc_id != seed.exclude]
        relevant = relevance(list(dict.fromkeys(doc for _, doc, _ in dense_hits)), [doc for doc, _ in keyword])
        ranked = rank(relevant, view, self.signals(), self._affinity(seed, view))
        window = ranked[(page - 1) * per_page: page * per_page]
        terms = own + [fold(word) for word in expansion.extra]
        results = self._results(window, dense_hits, dict(keyword), match, passages_per_doc)
        return SearchPage(seed.text if seed.exclude is None else "", terms, results, len(ranked), page, per_page, view)

    def _affinity(self, seed: Seed, view: str) -> dict[str, float]:
        if view != "evidence":
            return {}
        if seed.affinity is not None:
            return seed.affinity
        if self.affinity is None or seed.vector is None:
            return {}
        return self.affinity.of(seed.vector, seed.text)

    def _chunk_hits(self, chunks: list[tuple[int, float]], allowed: set[int] | None,
                    exclude: int | None) -> list[tuple[int, int, float]]:
        """(chunk id, doc id, cosine) best first, restricted to allowed documents."""
        doc_of = self._doc_ids([cid for cid, _ in chunks])
        return [(cid, doc_of[cid], score) for cid, score in chunks
                if cid in doc_of and doc_of[cid] != exclude and (allowed is None or doc_of[cid] in allowed)]

    def _dense_batch(self, queries: list[tuple[str, int]]) -> list[tuple[np.ndarray, list[tuple[int, float]]]]:
        """(vector, [(chunk id, cosine)]) per (query, k): one embedding call for the queries not seen
        before, and one FAISS search for the lot."""
        vectors = self._query_vectors([text for text, _ in queries])
        if not len(self.vectors):
            return [(vectors[row], []) for row in range(len(queries))]
        scores, ids = self.vectors.search(vectors, k=max(k for _, k in queries))
        return [(vectors[row], _stable_order(ids[row, :k], scores[row, :k])) for row, (_, k) in enumerate(queries)]

    def _query_vectors(self, texts: list[str]) -> np.ndarray:
        found: dict[str, np.ndarray] = {}
        for text in texts:
            vector = self._cache.get(text)
            if vector is not None:
                found[text] = vector
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        if missing:
            for text, vector in zip(missing, self.embedder.encode_queries(missing), strict=True):
                self._cache.put(text, vector)
                found[text] = vector
        return np.stack([found[text] for text in texts]).astype(np.float32)

    def _mean_vector(self, chunk_ids: list[int]) -> np.ndarray | None:
        absent = set(self.vectors.missing(chunk_ids))
        present = [cid for cid in chunk_ids if cid not in absent]
        if not present:
            return None
        mean = self.vectors.reconstruct_many(present).mean(axis=0)
        return (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)

    def _load_chunk_docs(self) -> bool:
        """Every chunk's document, in memory: looked up for hundreds of chunks per search. True
        when the chunks changed since the last load."""
        with self.store.session() as session:
            state = tuple(session.execute(select(func.count(Chunk.id), func.max(Chunk.id))).one())
            if state == self._chunks_state:
                return False
            self._chunk_docs = dict(session.execute(select(Chunk.id, Chunk.doc_id)).all())
            self._chunks_state = state
        return True

    def _doc_ids(self, chunk_ids: list[int]) -> dict[int, int]:
        if not self._chunks_state:
            self._load_chunk_docs()
        known = {cid: self._chunk_docs[cid] for cid in chunk_ids if cid in self._chunk_docs}
        unknown = [cid for cid in chunk_ids if cid not in known]
        if unknown:   # stored since the last refresh
            with self.store.session() as session:
                known.update(session.execute(select(Chunk.id, Chunk.doc_id).where(Chunk.id.in_(set(unknown))))
                             .all())
        return known

    # -- results ---------------------------------------------------------------------------------

    def _results(self, window: list[tuple[int, float]], dense_hits: list[tuple[int, int, float]],
                 keyword: dict[int, float], match: str, passages_per_doc: int) -> list[SearchResult]:
        doc_ids = [doc_id for doc_id, _ in window]
        passages = self._best_passages(set(doc_ids), dense_hits, match, passages_per_doc)
        best_dense: dict[int, float] = {}
        for _, doc_id, score in dense_hits:
            best_dense.setdefault(doc_id, score)
        docs, texts = self._shown(doc_ids, [cid for shown in passages.values() for cid, _ in shown])
        flags = self.signals().evidence
        return [SearchResult(doc.id, doc.url, doc.title, score, doc.kind, doc.lang, doc.source, doc.published,
                             best_dense.get(doc_id), keyword.get(doc_id),
                             [Passage(cid, texts[cid], value) for cid, value in passages.get(doc_id, [])
                              if cid in texts], sorted(flags.get(doc_id, {})))
                for doc_id, score in window if (doc := docs.get(doc_id)) is not None]

    def _best_passages(self, window: set[int], dense_hits: list[tuple[int, int, float]], match: str,
                       per_doc: int) -> dict[int, list[tuple[int, float]]]:
        """Each shown page's best passages, (chunk id, score), by reciprocal rank in the dense and
        the keyword passage lists; only these are read from the store."""
        dense = [cid for cid, doc_id, _ in dense_hits if doc_id in window]
        keyword = [cid for cid, _, _ in self.lexical.passages(match, CANDIDATES, window)] if window else []
        scores = relevance(dense, keyword)
        doc_of = self._doc_ids(list(scores))
        by_doc: dict[int, list[tuple[int, float]]] = {}
        for cid, value in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
            shown = by_doc.setdefault(doc_of[cid], [])
            if len(shown) < per_doc:
                shown.append((cid, value))
        return by_doc

    def _shown(self, doc_ids: list[int], chunk_ids: list[int]) -> tuple[dict[int, Any], dict[int, str]]:
        """The documents' shown columns and the passages' texts only: a whole Document row carries
        the page's full text and JSON fields, and loading ORM objects cost a third of a search under load."""
        with self.store.session() as session:
            docs = {row.id: row for row in session.execute(
                select(Document.id, Document.url, Document.title, Document.kind, Document.lang, Document.source,
                       Document.published).where(Document.id.in_(doc_ids)))}
            texts = dict(session.execute(select(Chunk.id, Chunk.text).where(Chunk.id.in_(chunk_ids))).all())
        return docs, texts

    def _browse(self, query: str, allowed: set[int] | None, page: int, per_page: int, view: str) -> SearchPage:
        statement = select(Document).order_by(Document.published.desc(), Document.id.desc())
        if allowed is not None:
            statement = statement.where(Document.id.in_(allowed))
        with self.store.session() as session:
            docs = list(session.scalars(statement.offset((page - 1) * per_page).limit(per_page)))
            total = len(allowed) if allowed is not None else session.query(Document).count()
        flags = self.signals().evidence
        results = [SearchResult(d.id, d.url, d.title, 0.0, d.kind, d.lang, d.source, d.published,
                                patterns=sorted(flags.get(d.id, {}))) for d in docs]
        return SearchPage(query, [], results, total, page, per_page, view)

    # -- the naive baseline and the document page's neighbours ---------------------------------

    def dense_documents(self, query: str, limit: int) -> list[int]:
        """The naive dense ranking: every page by its best sentence's cosine with the query."""
        scores, ids = self.vectors.search(self.embedder.encode([query]), k=len(self.vectors))
        doc_of = self._doc_ids([int(i) for i in ids[0] if i >= 0])
        return list(dict.fromkeys(doc_of[int(i)] for i in ids[0] if int(i) in doc_of))[:limit]

    def similar(self, doc_id: int, limit: int = 5) -> list[SearchResult]:
        """Documents nearest to this one's passages (another stage, a copy, a sibling), for the
        document page's aside; "more like this" ranks a whole page of them."""
        return self.more_like(doc_id, per_page=limit, view="everything").results


def _view(view: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    return view


def _filter_key(filters: SearchFilters) -> tuple[Any, ...]:
    return tuple(sorted(filters.__dict__.items()))


def _search_key(query: str, filters: SearchFilters, page: int, per_page: int, passages: int,
                view: str) -> tuple[Any, ...]:
    return ("search", query, _filter_key(filters), page, per_page, passages, view)


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {key: value / total for key, value in weights.items()} if total else {}


def _stable_order(ids: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    """(chunk id, cosine) best first, cosines rounded to COSINE_DECIMALS and ties by chunk id.

    Why: a query embedded in a batch with others comes out a few 1e-7 away from the same query
    embedded alone, and FAISS then orders two nearly tied passages either way; a search must
    rank the same whether the server is busy or idle."""
    hits = [(int(i), round(float(s), COSINE_DECIMALS)) for i, s in zip(ids, scores, strict=True) if i >= 0]
    return sorted(hits, key=lambda hit: (-hit[1], hit[0]))


def engine_for(settings: Any, store: Store | None = None, vectors: VectorIndex | None = None) -> SearchEngine:
    """The engine for a data directory, reusing a Monitor's store and vectors when given."""
    from index.embed import get_embedder

    embedder = get_embedder(settings.embedding.model, settings.embedding.batch_size)
    store = store or Store(settings.db_url)
    if vectors is None:
        vectors = VectorIndex.load(settings.index_dir, embedder.model_id, embedder.dimension)
    files = (settings.watchlist_file, settings.search_vocabulary_file, *settings.pattern_files)
    expander, affinity = _readers(settings.watchlist_file, settings.search_vocabulary_file,
                                  tuple(settings.pattern_files), settings.embedding.model,
                                  settings.embedding.batch_size, _stamp(*files))
    engine = SearchEngine(store, vectors, embedder, LexicalIndex(settings.index_dir, expander.dictionary()),
                          settings.index_dir, expander, affinity)
    engine.refresh()
    return engine


def _stamp(*paths: Path) -> tuple[float, ...]:
    return tuple(Path(path).stat().st_mtime for path in paths)


@lru_cache(maxsize=8)
def _readers(watchlist_file: Path, vocabulary_file: Path, pattern_files: tuple[Path, ...], model: str,
             batch_size: int, _stamp: tuple[float, ...]) -> tuple[QueryExpander, PatternAffinity]:
    """The query expander and the pattern affinity for these files (kept while the files are unchanged:
    building them embeds every pattern's examples)."""
    from index.embed import get_embedder
    from index.entities import load_watchlist
    from index.patterns import load_library
    from index.query import load_vocabulary

    watchlist = load_watchlist(watchlist_file)
    expander = QueryExpander(watchlist, load_vocabulary(vocabulary_file))
    affinity = PatternAffinity(load_library(list(pattern_files)), get_embedder(model, batch_size), watchlist)
    return expander, affinity
