"""Chunking, embeddings and the vector index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.chunking import chunk_document, split_sentences
from index.embed import USEM3_MODEL_ID, get_embedder
from index.vectors import ModelMismatch, VectorIndex

SENTENCES = [
    "公安局视频分析服务器采购，配置NVIDIA T4显卡",
    "Police bureau buys video analytics servers with NVIDIA T4 GPUs",
    "学校食堂采购大米和食用油",
    "A school canteen buys rice and cooking oil",
    "租用AWS新加坡区域的H100 GPU云服务器",
]


def test_buried_table_row_is_its_own_chunk() -> None:
    text = "采购需求如下：\n| 序号 | 内容 |\n| 1 | 办公桌椅 |\n| 4 | GPU云实例，AWS p4d.24xlarge，美国西部区域 |\n合同期一年。"
    chunks = split_sentences(text)
    assert any("p4d.24xlarge" in chunk and "办公桌椅" not in chunk for chunk in chunks)


def test_title_is_first_chunk() -> None:
    assert chunk_document("标题：某项目公告", "正文第一句很长很长很长。正文第二句也很长很长。")[0] == "标题：某项目公告"


def test_offline_default_is_multilingual() -> None:
    embedder = get_embedder()
    assert embedder.model_id == USEM3_MODEL_ID
    vectors = embedder.encode(SENTENCES)
    assert vectors.shape == (5, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    # A Chinese sentence is nearer its English translation than an unrelated sentence.
    assert similarity[0, 1] > similarity[0, 3] + 0.3
    assert similarity[2, 3] > similarity[2, 1] + 0.3


def test_usem3_joins_match_embedding_the_joined_text() -> None:
    """index.usem3_sums reads the package's weights: a new package version that changes the
    network must fail here, not quietly shift every detection score."""
    embedder = get_embedder()
    texts = SENTENCES + ["采购内容：GPU云服务器租赁，部署于海外区域。", "Hosted on AWS us-east-1 with A100 instances."]
    joins = [(i, i + 1, " ") for i in range(len(texts) - 1)] + [(0, i, " | ") for i in range(2, len(texts))]
    vectors, joined = embedder.encode_with_joins(texts, joins)
    assert np.allclose(vectors, embedder.encode(texts), atol=1e-4)
    as_text = embedder.encode([f"{texts[a]}{sep}{texts[b]}" for a, b, sep in joins])
    cosine = (joined * as_text).sum(axis=1)
    assert cosine.min() > 0.9 and cosine.mean() > 0.97


def test_index_save_reload_same_neighbours(tmp_path: Path) -> None:
    embedder = get_embedder()
    vectors = embedder.encode(SENTENCES)
    ids = np.array([101, 205, 307, 409, 511])
    index = VectorIndex(embedder.dimension, embedder.model_id)
    index.add(ids, vectors)
    before = index.search(vectors, k=3)
    index.save(tmp_path)
    reloaded = VectorIndex.load(tmp_path, embedder.model_id, embedder.dimension)
    after = reloaded.search(vectors, k=3)
    assert len(reloaded) == 5
    assert (before[1] == after[1]).all()
    assert np.allclose(before[0], after[0])
    assert set(before[1][:, 0]) == set(ids.tolist())


def test_index_refuses_other_model(tmp_path: Path) -> None:
    index = VectorIndex(4, "model-a")
    index.add(np.array([1]), np.ones((1, 4), dtype=np.float32) / 2)
    index.save(tmp_path)
    with pytest.raises(ModelMismatch):
        VectorIndex.load(tmp_path, "model-b", 4)


def test_index_removes_ids() -> None:
    index = VectorIndex(4, "m")
    index.add(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
    assert index.remove(np.array([1])) == 1
    _, ids = index.search(np.eye(4, dtype=np.float32)[:1], k=2)
    assert 1 not in ids[0].tolist()
