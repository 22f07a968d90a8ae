"""The approximate index: background switch from exact search, recall@10 against exact, deletions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ground.config import IndexSettings
from index.vectors import VectorIndex

DIM = 128


def synthetic(count: int, anchors: np.ndarray, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    """Unit vectors between pairs of anchor points plus noise: clustered, like sentence embeddings."""
    i, j = rng.integers(0, len(anchors), count), rng.integers(0, len(anchors), count)
    weight = rng.random((count, 1)).astype(np.float32) * 0.5
    vectors = (1 - weight) * anchors[i] + weight * anchors[j]
    vectors += noise * rng.standard_normal((count, anchors.shape[1])).astype(np.float32) / np.sqrt(anchors.shape[1])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    anchors = rng.standard_normal((3000, DIM)).astype(np.float32)
    anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
    return np.arange(50_000, dtype=np.int64) * 3 + 11, synthetic(50_000, anchors, rng), synthetic(200, anchors, rng)


def recall_at_10(truth: np.ndarray, found: np.ndarray) -> float:
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)]))


def test_switches_to_approximate_in_background_with_recall(data: tuple, tmp_path: Path) -> None:
    ids, vectors, queries = data
    exact = VectorIndex(DIM, "m", IndexSettings(approximate_above=10**9))
    exact.add(ids, vectors)
    index = VectorIndex(DIM, "m", IndexSettings(approximate_above=20_000))
    index.add(ids[:30_000], vectors[:30_000])       # passes the threshold: training starts
    index.add(ids[30_000:], vectors[30_000:])       # arrives during the build: replayed
    index.wait()
    assert index.kind == "ivf" and len(index) == len(ids)
    truth = exact.search(queries, 10)[1]
    assert recall_at_10(truth, index.search(queries, 10)[1]) >= 0.95
    index.save(tmp_path)
    reloaded = VectorIndex.load(tmp_path, "m", DIM, IndexSettings(approximate_above=20_000))
    assert reloaded.kind == "ivf" and recall_at_10(truth, reloaded.search(queries, 10)[1]) >= 0.95


def test_deletions_on_the_approximate_index(data: tuple) -> None:
    ids, vectors, queries = data
    index = VectorIndex(DIM, "m", IndexSettings(approximate_above=1000))
    index.add(ids[:20_000], vectors[:20_000])
    index.wait()
    assert index.kind == "ivf"
    nearest = index.search(queries[:20], 1)[1][:, 0]
    assert index.remove(nearest) == len(set(nearest.tolist()))
    assert not set(index.search(queries[:20], 10)[1].ravel().tolist()) & set(nearest.tolist())
    kept = int(ids[5])
    assert np.dot(index.reconstruct(kept), vectors[5]) > 0.99  # 8-bit codes decode close to the original
