"""Semantic search over chunks, grouped by document (an English query finds Chinese pages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from index.embed import Embedder
from index.store import Chunk, Document, Store
from index.vectors import VectorIndex


@dataclass
class SearchResult:
    doc_id: int
    url: str
    title: str
    score: float
    kind: str
    lang: str
    passages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"doc_id": self.doc_id, "url": self.url, "title": self.title, "score": round(self.score, 4),
                "kind": self.kind, "lang": self.lang, "passages": self.passages}


def search(query: str, store: Store, vectors: VectorIndex, embedder: Embedder, limit: int = 10,
           passages_per_doc: int = 3) -> list[SearchResult]:
    """Best documents first; a document scores by its best passage."""
    if not query.strip() or len(vectors) == 0:
        return []
    scores, ids = vectors.search(embedder.encode([query]), k=min(len(vectors), limit * 20))
    hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    with store.session() as session:
        chunks = {c.id: c for c in session.scalars(select(Chunk).where(Chunk.id.in_([i for i, _ in hits])))}
        results: dict[int, SearchResult] = {}
        for chunk_id, score in hits:
            chunk = chunks.get(chunk_id)
            if chunk is None:
                continue
            if chunk.doc_id not in results:
                if len(results) >= limit:
                    continue
                doc = session.get(Document, chunk.doc_id)
                if doc is None:
                    continue
                results[chunk.doc_id] = SearchResult(doc.id, doc.url, doc.title, score, doc.kind, doc.lang)
            result = results[chunk.doc_id]
            if len(result.passages) < passages_per_doc:
                result.passages.append(chunk.text)
    return sorted(results.values(), key=lambda r: r.score, reverse=True)
