"""Lexical (BM25) retrieval over chunks: SQLite FTS5 on jieba-segmented text.

Why FTS5: it keeps a persisted inverted index with BM25 ranking built in, updated one
document at a time, so a query never re-tokenises the corpus. Why jieba: Chinese has no
spaces; FTS5's own tokenizers would index single characters or whole runs. Text is
segmented here (search-engine mode, so 海康威视 is found by 海康) and stored space-joined.

The index is derived data, like the FAISS file: it lives in the index folder whatever the
main database is, and :meth:`LexicalIndex.sync` brings it up to date with the store by
comparing each document's content hash and chunk count with what was indexed.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from index.entities import fold
from index.store import Chunk, Document, Store

DB_FILE = "lexical.sqlite"
_WORD = re.compile(r"[\w\u4e00-\u9fff][\w.\-\u4e00-\u9fff]*", re.UNICODE)
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is",
    "it", "of", "on", "or", "that", "the", "this", "to", "with", "was", "were", "will",
    "的", "了", "和", "与", "及", "或", "在", "是", "为", "对", "等", "中", "由",
    "于", "将", "其", "并", "及其", "以及", "一", "个", "我", "我们", "贵", "本", "该",
})
MAX_QUERY_TERMS = 48


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """Load jieba once per process (its dictionary takes a second or two)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """Lower-cased words; Chinese runs segmented by jieba (search mode); Traditional folded."""
    tokens = []
    for piece in _jieba().cut_for_search(fold(text)):
        for word in _WORD.findall(piece):
            word = word.strip(".-").lower()
            if word and word not in _STOP:
                tokens.append(word)
    return tokens


def query_terms(query: str) -> list[str]:
    """Distinct query tokens in order, capped so a pasted page cannot make a huge query."""
    seen: dict[str, None] = {}
    for token in tokenize(query):
        seen.setdefault(token, None)
    return list(seen)[:MAX_QUERY_TERMS]


class LexicalIndex:
    """One FTS5 table of chunk tokens (rowid = chunk id) and a ledger of indexed documents."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5("
                             "tokens, doc_id UNINDEXED, tokenize='unicode61 remove_diacritics 0')")
            self._db.execute("CREATE TABLE IF NOT EXISTS indexed_docs(doc_id INTEGER PRIMARY KEY, "
                             "sha256 TEXT NOT NULL, chunks INTEGER NOT NULL)")

    def sync(self, store: Store) -> int:
        """Index documents that are new or changed, drop those that are gone; returns documents touched."""
        with store.session() as session:
            current = {row.id: (row.sha256, row.n) for row in session.execute(
                select(Document.id, Document.sha256, func.count(Chunk.id).label("n"))
                .outerjoin(Chunk, Chunk.doc_id == Document.id).group_by(Document.id, Document.sha256))}
        with self._lock:
            indexed = {doc_id: (sha, n) for doc_id, sha, n in self._db.execute(
                "SELECT doc_id, sha256, chunks FROM indexed_docs")}
        stale = [doc_id for doc_id, state in current.items() if indexed.get(doc_id) != state]
        gone = [doc_id for doc_id in indexed if doc_id not in current]
        self._drop(gone)
        for start in range(0, len(stale), 200):
            self._index_docs(store, stale[start:start + 200], current)
        return len(stale) + len(gone)

    def _drop(self, doc_ids: Sequence[int]) -> None:
        with self._lock, self._db:
            for doc_id in doc_ids:
                self._db.execute("DELETE FROM chunk_fts WHERE doc_id = ?", (doc_id,))
                self._db.execute("DELETE FROM indexed_docs WHERE doc_id = ?", (doc_id,))

    def _index_docs(self, store: Store, doc_ids: list[int], state: dict[int, tuple[str, int]]) -> None:
        with store.session() as session:
            rows = session.execute(select(Chunk.id, Chunk.doc_id, Chunk.text)
                                   .where(Chunk.doc_id.in_(doc_ids))).all()
        tokens = [(row.id, " ".join(tokenize(row.text)), row.doc_id) for row in rows]
        with self._lock, self._db:
            for doc_id in doc_ids:
                self._db.execute("DELETE FROM chunk_fts WHERE doc_id = ?", (doc_id,))
            self._db.executemany("INSERT INTO chunk_fts(rowid, tokens, doc_id) VALUES (?, ?, ?)", tokens)
            self._db.executemany("INSERT OR REPLACE INTO indexed_docs(doc_id, sha256, chunks) VALUES (?, ?, ?)",
                                 [(doc_id, *state[doc_id]) for doc_id in doc_ids])

    def search(self, query: str, k: int, doc_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) best first, optionally within some documents."""
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        sql = "SELECT rowid, -bm25(chunk_fts) FROM chunk_fts WHERE chunk_fts MATCH ?"
        params: list[object] = [match]
        if doc_ids is not None:
            allowed = sorted(set(doc_ids))
            if not allowed:
                return []
            sql += " AND doc_id IN (SELECT value FROM json_each(?))"  # one parameter, any count
            params.append(json.dumps(allowed))
        sql += " ORDER BY bm25(chunk_fts) LIMIT ?"
        params.append(k)
        return [(int(row[0]), float(row[1])) for row in self._reader().execute(sql, params)]

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection. Searches from the web server's threads then run side
        by side (WAL readers do not block each other or the writer); behind the one shared connection's
        lock they queued, each holder waiting for the GIL with the lock held (a quarter of the time
        under 50 clients)."""
        reader: sqlite3.Connection | None = getattr(self._local, "db", None)
        if reader is None:
            reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                                     check_same_thread=False)   # closed by close(), from whichever thread
            with self._lock:
                self._readers.append(reader)
            self._local.db = reader
        return reader

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM indexed_docs").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._local = threading.local()
        self._db.close()
