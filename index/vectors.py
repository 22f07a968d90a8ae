"""A FAISS index over chunk vectors with stable ids (the chunk ids in the store).

Small collections are searched exactly (``IndexFlatIP``). Above ``index.approximate_above``
vectors a compressed approximate index takes over: IVF with scalar quantisation (8 bits per
dimension by default, a quarter of the memory of float32), trained on a sample and filled in a
background thread while the exact index keeps answering; changes made during the build are
replayed before the swap. When the collection has grown well past what the IVF was trained on,
it is retrained the same way. Deletions work on both kinds (``remove_ids``).

Saved atomically beside a small JSON header that records the model id; loading with another
model is refused, because vectors from two models are not comparable.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ground.config import IndexSettings

log = logging.getLogger(__name__)

INDEX_FILE = "chunks.faiss"
META_FILE = "chunks.json"
QUANTIZERS = {"SQ8": faiss.ScalarQuantizer.QT_8bit, "SQ6": faiss.ScalarQuantizer.QT_6bit,
              "SQfp16": faiss.ScalarQuantizer.QT_fp16}
RETRAIN_GROWTH = 4        # retrain the IVF once it holds this many times what it was trained with
TRAIN_PER_CELL = 64       # k-means sample: enough per cell for stable centroids, quick on 2 cores


def search_threads(count: int) -> None:
    """FAISS's OpenMP threads for this process. A server answering many searches at once wants one:
    its parallelism is the concurrent requests, and on two busy cores OpenMP's spinning threads made
    one exact search over 1,600 passages take 7.5 ms instead of 0.15 ms."""
    faiss.omp_set_num_threads(max(1, count))


class ModelMismatch(ValueError):
    """The saved index was built with another embedding model."""


def _as_ids(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids, dtype=np.int64)


def _as_vectors(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def exact_index(dimension: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def train_approximate(vectors: np.ndarray, settings: IndexSettings, seed: int = 0) -> faiss.Index:
    """An empty, trained IVF-SQ index for data like ``vectors`` (inner product on unit vectors)."""
    count, dimension = vectors.shape
    nlist = settings.nlist or int(min(4096, max(64, math.sqrt(count))))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, QUANTIZERS[settings.quantizer],
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.cp.max_points_per_centroid = TRAIN_PER_CELL
    sample = vectors
    if count > nlist * TRAIN_PER_CELL:
        sample = vectors[np.random.default_rng(seed).choice(count, nlist * TRAIN_PER_CELL, replace=False)]
    index.train(_as_vectors(sample))
    # A hash table from id to list position: fast deletions and reconstruct() by chunk id.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    index.nprobe = settings.nprobe
    return index


def contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) held by an index of either kind (IVF-SQ vectors come back decoded)."""
    if isinstance(index, faiss.IndexIDMap2):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        flat = faiss.downcast_index(index.index)
        return ids, flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.zeros((0, index.d), np.float32)
    ivf = faiss.extract_index_ivf(index)
    invlists: Any = ivf.invlists
    id_parts: list[np.ndarray] = []
    vector_parts: list[np.ndarray] = []
    for cell in range(ivf.nlist):
        size = invlists.list_size(cell)
        if size:
            cell_ids = faiss.rev_swig_ptr(invlists.get_ids(cell), size).copy()
            id_parts.append(cell_ids)
            vector_parts.append(ivf.reconstruct_batch(cell_ids))
    if not id_parts:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    return np.concatenate(id_parts).astype(np.int64), np.concatenate(vector_parts)


class VectorIndex:
    def __init__(self, dimension: int, model_id: str, settings: IndexSettings | None = None) -> None:
        self.dimension = dimension
        self.model_id = model_id
        self.settings = settings or IndexSettings()
        self._index: faiss.Index = exact_index(dimension)
        self._trained_with = 0
        self._lock = threading.RLock()
        self._journal: list[tuple[np.ndarray, np.ndarray | None]] | None = None  # changes during a build
        self._builder: threading.Thread | None = None

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        return "exact" if isinstance(self._index, faiss.IndexIDMap2) else "ivf"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids, vectors = _as_ids(ids), _as_vectors(vectors)
        with self._lock:
            self._index.add_with_ids(vectors, ids)
            if self._journal is not None:
                self._journal.append((ids, vectors))
        self._maybe_rebuild()

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = _as_ids(ids)
        with self._lock:
            removed = int(self._index.remove_ids(ids))  # type: ignore[arg-type]
            if self._journal is not None:
                self._journal.append((ids, None))
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (len(queries), k); missing neighbours have id -1."""
        k = max(1, min(k, len(self) or 1))
        with self._lock:
            return self._index.search(_as_vectors(queries), k)

    def ids(self) -> np.ndarray:
        """Every stored id (what the store's chunk ids are checked against on load)."""
        return np.asarray(faiss.vector_to_array(self._index.id_map), dtype=np.int64)  # type: ignore[attr-defined]

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        with self._lock:
            return np.asarray(self._index.reconstruct(int(chunk_id)))

    def missing(self, chunk_ids: list[int]) -> list[int]:
        """The ids that have no vector here (rows stored by a page whose ingest failed halfway)."""
        absent = []
        with self._lock:
            for chunk_id in chunk_ids:
                try:
                    self._index.reconstruct(int(chunk_id))
                except RuntimeError:
                    absent.append(chunk_id)
        return absent

    def reconstruct_many(self, chunk_ids: list[int]) -> np.ndarray:
        """Stored vectors for these ids (decoded from 8 bits once the index is approximate)."""
        if not chunk_ids:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            return np.stack([np.asarray(self._index.reconstruct(int(i))) for i in chunk_ids]).astype(np.float32)

    # -- switching to, and retraining, the approximate index ----------------------------------

    def _needs_rebuild(self) -> bool:
        count = len(self)
        if self.kind == "exact":
            return count > self.settings.approximate_above
        return count > RETRAIN_GROWTH * max(1, self._trained_with)

    def _maybe_rebuild(self) -> None:
        if self._builder is None and self._needs_rebuild():
            self.rebuild(background=True)

    def rebuild(self, background: bool = False) -> None:
        """Train an approximate index on what is held now and swap it in (replaying later changes)."""
        with self._lock:
            if self._builder is not None:
                return
            ids, vectors = contents(self._index)
            self._journal = []
            self._builder = threading.Thread(target=self._build, args=(ids, vectors), name="faiss-build",
                                             daemon=True)
        self._builder.start()
        if not background:
            self.wait()

    def _build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        try:
            log.info("training an approximate index on %d vectors", len(ids))
            index = train_approximate(vectors, self.settings)
            index.add_with_ids(vectors, ids)
            del vectors
            with self._lock:
                for op_ids, op_vectors in self._journal or []:  # vectors None: a removal
                    if op_vectors is not None:
                        index.add_with_ids(op_vectors, op_ids)
                    else:
                        index.remove_ids(op_ids)  # type: ignore[arg-type]
                self._index, self._trained_with = index, len(ids)
        except Exception:
            log.exception("building the approximate index failed; exact search goes on")
        finally:
            with self._lock:
                self._journal = None
                self._builder = None

    def wait(self) -> None:
        """Block until a background build, if any, has swapped its index in."""
        builder = self._builder
        if builder is not None:
            builder.join()

    # -- persistence --------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write to temporary names, then rename: a crash leaves the old pair intact."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp_index = directory / (INDEX_FILE + ".tmp")
        tmp_meta = directory / (META_FILE + ".tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp_index))
            meta = {"model_id": self.model_id, "dimension": self.dimension, "count": len(self), "kind": self.kind,
                    "trained_with": self._trained_with}
        tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
        for tmp in (tmp_index, tmp_meta):  # on disk before the rename, or a power cut may leave an empty file
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_index, directory / INDEX_FILE)
        os.replace(tmp_meta, directory / META_FILE)

    @classmethod
    def load(cls, directory: Path, model_id: str, dimension: int, settings: IndexSettings | None = None) -> VectorIndex:
        """The saved index, or an empty one when none exists yet."""
        meta_path = directory / META_FILE
        index = cls(dimension, model_id, settings)
        if not meta_path.exists() or not (directory / INDEX_FILE).exists():
            return index
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("model_id") != model_id:
            raise ModelMismatch(f"{directory}: index built with {meta.get('model_id')!r}, "
                                f"configured model is {model_id!r}; rebuild with `loophole reindex`")
        index._index = faiss.read_index(str(directory / INDEX_FILE))
        index._trained_with = int(meta.get("trained_with", 0))
        if index.kind == "ivf":
            faiss.extract_index_ivf(index._index).nprobe = index.settings.nprobe
        return index
