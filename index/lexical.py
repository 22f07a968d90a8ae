"""Lexical (BM25) retrieval: SQLite FTS5 over pages and over their passages, on jieba-segmented text.

Why FTS5: it keeps a persisted inverted index with BM25 ranking built in, updated one
document at a time, so a query never re-tokenises the corpus. Why jieba: Chinese has no
spaces; FTS5's own tokenizers would index single characters or whole runs. Han runs are
segmented here (search-engine mode, so 海康威视 is found by 海康), with the domain's names
(the watchlist's aliases, the search vocabulary) added to jieba's dictionary so that 英伟达 or
算力租赁 stay whole; Latin runs are kept as written (``p4d.24xlarge``). Tokens are stored
space-joined and FTS5's porter stage folds English endings (servers, server).

Two tables: pages (title and body, weighted), which rank documents, since the facts that make
a page evidence are often in different lines of it (a police buyer in the title, an NVIDIA card
in a table row); and passages, which say where a page matched.

The index is derived data, like the FAISS file: it lives in the index folder whatever the main
database is, :meth:`LexicalIndex.sync` brings it up to date with the store by comparing each
document's content hash and chunk count with what was indexed, and a change of tokenizer (a new
dictionary word) rebuilds it.
"""

from __future__ import annotations

import hashlib
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
TOKENIZER_VERSION = "2"     # bump when tokenize() changes: the index is rebuilt
TITLE_WEIGHT = 2.0          # a word in a page's title counts twice one in its body
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[\w\u4e00-\u9fff][\w.\-\u4e00-\u9fff]*", re.UNICODE)
_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is",
    "it", "of", "on", "or", "that", "the", "this", "to", "with", "was", "were", "will",
    "的", "了", "和", "与", "及", "或", "在", "是", "为", "对", "等", "中", "由",
    "于", "将", "其", "并", "及其", "以及", "一", "个", "我", "我们", "贵", "本", "该",
})
MAX_QUERY_TERMS = 48
_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5(tokens, doc_id UNINDEXED, "
    "tokenize='porter unicode61 remove_diacritics 0')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS doc_fts USING fts5(title, body, "
    "tokenize='porter unicode61 remove_diacritics 0')",
    "CREATE TABLE IF NOT EXISTS indexed_docs(doc_id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, "
    "chunks INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_dictionary_lock = threading.Lock()
_dictionary: set[str] = set()


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """Load jieba once per process (its dictionary takes a second or two)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def add_dictionary_words(words: Iterable[str]) -> None:
    """Teach jieba the domain's Chinese names, so they are segmented whole (process-wide)."""
    new = {fold(word) for word in words if _HAN.fullmatch(fold(word) or "-")} - _dictionary
    if not new:
        return
    jieba = _jieba()
    with _dictionary_lock:
        for word in sorted(new):
            jieba.add_word(word)
        _dictionary.update(new)


def tokenizer_fingerprint() -> str:
    """Changes whenever tokenize() would split some text differently."""
    payload = TOKENIZER_VERSION + "\n" + "\n".join(sorted(_dictionary))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _words(piece: str) -> list[str]:
    tokens = []
    for word in _WORD.findall(piece):
        word = word.strip(".-").lower()
        if word and word not in _STOP:
            tokens.append(word)
    return tokens


def tokenize(text: str) -> list[str]:
    """Lower-cased words: Han runs segmented by jieba (search mode), Latin runs kept as words;
    Traditional folded to Simplified, full-width to ASCII."""
    folded, tokens, last = fold(text), [], 0
    for run in _HAN.finditer(folded):
        tokens += _words(folded[last:run.start()])
        for piece in _jieba().cut_for_search(run.group(0)):
            tokens += _words(piece)
        last = run.end()
    return tokens + _words(folded[last:])


def query_terms(query: str) -> list[str]:
    """Distinct query tokens in order, capped so a pasted page cannot make a huge query."""
    seen: dict[str, None] = {}
    for token in tokenize(query):
        seen.setdefault(token, None)
    return list(seen)[:MAX_QUERY_TERMS]


def _quoted(tokens: Sequence[str]) -> str:
    return '"' + " ".join(tokens).replace('"', '""') + '"'


def match_expression(terms: Sequence[str], phrases: Sequence[str] = ()) -> str:
    """An FTS5 query: any of the terms, or any phrase (tokenised, its words in order); '' for none."""
    parts = [_quoted([term]) for term in terms]
    for phrase in phrases:
        tokens = tokenize(phrase)
        if tokens:
            parts.append(_quoted(tokens))
    return " OR ".join(dict.fromkeys(parts))


class LexicalIndex:
    """Pages and passages in FTS5 (rowid = document id, chunk id) and a ledger of indexed documents."""

    def __init__(self, directory: Path, dictionary: Iterable[str] = ()) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        add_dictionary_words(dictionary)
        self.path = directory / DB_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        with self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._create_or_reset()

    def _create_or_reset(self) -> None:
        """Create the tables; drop them first when they were built by another tokenizer (or are
        the older, passages-only layout), so that sync() indexes everything again."""
        fingerprint = tokenizer_fingerprint()
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        stored = (self._db.execute("SELECT value FROM meta WHERE key='tokenizer'").fetchone()
                  if "meta" in tables else None)
        if tables and (stored is None or stored[0] != fingerprint):
            for table in ("chunk_fts", "doc_fts", "indexed_docs", "meta"):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('tokenizer', ?)", (fingerprint,))

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
                self._forget(doc_id)
                self._db.execute("DELETE FROM indexed_docs WHERE doc_id = ?", (doc_id,))

    def _forget(self, doc_id: int) -> None:
        self._db.execute("DELETE FROM chunk_fts WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM doc_fts WHERE rowid = ?", (doc_id,))

    def _index_docs(self, store: Store, doc_ids: list[int], state: dict[int, tuple[str, int]]) -> None:
        with store.session() as session:
            rows = session.execute(select(Chunk.id, Chunk.doc_id, Chunk.text)
                                   .where(Chunk.doc_id.in_(doc_ids))).all()
            pages = session.execute(select(Document.id, Document.title, Document.text)
                                    .where(Document.id.in_(doc_ids))).all()
        chunks = [(row.id, " ".join(tokenize(row.text)), row.doc_id) for row in rows]
        docs = [(row.id, " ".join(tokenize(row.title or "")), " ".join(tokenize(row.text or ""))) for row in pages]
        with self._lock, self._db:
            for doc_id in doc_ids:
                self._forget(doc_id)
            self._db.executemany("INSERT INTO chunk_fts(rowid, tokens, doc_id) VALUES (?, ?, ?)", chunks)
            self._db.executemany("INSERT INTO doc_fts(rowid, title, body) VALUES (?, ?, ?)", docs)
            self._db.executemany("INSERT OR REPLACE INTO indexed_docs(doc_id, sha256, chunks) VALUES (?, ?, ?)",
                                 [(doc_id, *state[doc_id]) for doc_id in doc_ids])

    def search(self, query: str, k: int, doc_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) for the query's own words, best first."""
        return [(cid, score) for cid, _, score in self.passages(match_expression(query_terms(query)), k, doc_ids)]

    def documents(self, match: str, k: int, doc_ids: Iterable[int] | None = None) -> list[tuple[int, float]]:
        """(document id, BM25 score over title and body; higher is better) best first."""
        sql = f"SELECT rowid, -bm25(doc_fts, {TITLE_WEIGHT}, 1.0) AS score FROM doc_fts WHERE doc_fts MATCH ?"
        rows = self._run(sql, "rowid", match, k, doc_ids)
        return [(int(row[0]), float(row[1])) for row in rows]

    def passages(self, match: str, k: int, doc_ids: Iterable[int] | None = None) -> list[tuple[int, int, float]]:
        """(chunk id, document id, BM25 score) best first, optionally within some documents."""
        sql = "SELECT rowid, doc_id, -bm25(chunk_fts) AS score FROM chunk_fts WHERE chunk_fts MATCH ?"
        rows = self._run(sql, "doc_id", match, k, doc_ids)
        return [(int(row[0]), int(row[1]), float(row[2])) for row in rows]

    def _run(self, sql: str, doc_column: str, match: str, k: int, doc_ids: Iterable[int] | None) -> list[Any]:
        if not match:
            return []
        params: list[object] = [match]
        if doc_ids is not None:
            allowed = sorted(set(doc_ids))
            if not allowed:
                return []
            sql += f" AND {doc_column} IN (SELECT value FROM json_each(?))"  # one parameter, any count
            params.append(json.dumps(allowed))
        params.append(k)
        return self._reader().execute(sql + " ORDER BY score DESC LIMIT ?", params).fetchall()

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
