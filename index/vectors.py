"""A FAISS index over chunk vectors with stable ids (the chunk ids in the store).

Saved atomically beside a small JSON header that records the model id; loading with another
model is refused, because vectors from two models are not comparable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np

INDEX_FILE = "chunks.faiss"
META_FILE = "chunks.json"


class ModelMismatch(ValueError):
    """The saved index was built with another embedding model."""


class VectorIndex:
    def __init__(self, dimension: int, model_id: str) -> None:
        self.dimension = dimension
        self.model_id = model_id
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))  # type: ignore[arg-type]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (len(queries), k); missing neighbours have id -1."""
        k = max(1, min(k, len(self) or 1))
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def ids(self) -> np.ndarray:
        """Every stored id (what the store's chunk ids are checked against on load)."""
        return np.asarray(faiss.vector_to_array(self._index.id_map), dtype=np.int64)  # type: ignore[attr-defined]

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return np.asarray(self._index.reconstruct(int(chunk_id)))

    def save(self, directory: Path) -> None:
        """Write to temporary names, then rename: a crash leaves the old pair intact."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp_index = directory / (INDEX_FILE + ".tmp")
        tmp_meta = directory / (META_FILE + ".tmp")
        faiss.write_index(self._index, str(tmp_index))
        meta = {"model_id": self.model_id, "dimension": self.dimension, "count": len(self)}
        tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
        for tmp in (tmp_index, tmp_meta):  # on disk before the rename, or a power cut may leave an empty file
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_index, directory / INDEX_FILE)
        os.replace(tmp_meta, directory / META_FILE)

    @classmethod
    def load(cls, directory: Path, model_id: str, dimension: int) -> VectorIndex:
        """The saved index, or an empty one when none exists yet."""
        meta_path = directory / META_FILE
        index = cls(dimension, model_id)
        if not meta_path.exists() or not (directory / INDEX_FILE).exists():
            return index
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("model_id") != model_id:
            raise ModelMismatch(f"{directory}: index built with {meta.get('model_id')!r}, "
                                f"configured model is {model_id!r}; rebuild with `loophole reindex`")
        index._index = faiss.read_index(str(directory / INDEX_FILE))
        return index
