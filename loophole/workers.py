"""Extraction and embedding in worker processes: the two steps of ingest that need a CPU.

Why processes: both steps are Python and single-threaded numpy (index.embed uses one BLAS
thread), so one process uses one core. Workers only compute; the parent keeps everything
with state (store, snapshots, vector index, detector) and stays the one writer, so a worker
killed mid-page loses nothing the parent has not yet recorded.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from extract import ExtractedPage, UnusableContent, extract_page
from index.chunking import chunk_document
from index.detect import embed_units
from index.embed import Embedder, get_embedder

T = TypeVar("T")


@dataclass
class Prepared:
    """A page extracted, chunked and embedded: what the parent needs to store and score it."""

    page: ExtractedPage | None
    error: str = ""
    units: list[str] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    chunk_count: int = 0


def prepare(embedder: Embedder, body: bytes, url: str, content_type: str | None,
            selectors: dict[str, str]) -> Prepared:
    """Extract a page and embed its detection units; an unusable page comes back with the reason."""
    try:
        page = extract_page(body, url, content_type, selectors)
    except UnusableContent as exc:
        return Prepared(None, str(exc))
    return embed_page(embedder, page)


def embed_page(embedder: Embedder, page: ExtractedPage) -> Prepared:
    chunks = chunk_document(page.title, page.text)
    units, vectors = embed_units(embedder, chunks)
    return Prepared(page, "", units, vectors, len(chunks))


_EMBEDDER: Embedder | None = None


def _start_worker(model: str, batch_size: int) -> None:
    """Load the model and warm the extractors once per worker, not once per page."""
    from extract.page import warm_up

    global _EMBEDDER
    _EMBEDDER = get_embedder(model, batch_size)
    _EMBEDDER.encode(["warm-up"])
    warm_up()


def _prepare_in_worker(body: bytes, url: str, content_type: str | None, selectors: dict[str, str]) -> Prepared:
    assert _EMBEDDER is not None, "worker started without _start_worker"
    return prepare(_EMBEDDER, body, url, content_type, selectors)


class WorkerPool:
    """Pages prepared by N processes, handed back in the order they were given."""

    def __init__(self, workers: int, model: str, batch_size: int) -> None:
        # spawn, not fork: the parent may hold threads (FAISS background builds, BLAS pools)
        # that a forked child would inherit half-held.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker, initargs=(model, batch_size))
        self.window = 4 * workers   # pages in flight: enough to keep workers busy, bounded memory
        # Start every worker now, so start-up is not charged to the first pages.
        for started in [self._pool.submit(_noop) for _ in range(workers)]:
            started.result()

    def submit(self, body: bytes, url: str, content_type: str | None, selectors: dict[str, str]) -> Future[Prepared]:
        return self._pool.submit(_prepare_in_worker, body, url, content_type, selectors)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _noop() -> None:
    """A first task per worker: returns once the initializer has run."""


def in_order(items: Iterable[T], start: Callable[[T], Future[Prepared] | None],
             window: int) -> Iterator[tuple[T, Future[Prepared] | None]]:
    """Each item with its started job (or None when ``start`` declined it), in input order,
    with at most ``window`` jobs running ahead of the consumer."""
    pending: deque[tuple[T, Future[Prepared] | None]] = deque()
    for item in items:
        pending.append((item, start(item)))
        while sum(job is not None for _, job in pending) > window or (pending and pending[0][1] is None):
            yield pending.popleft()
    while pending:
        yield pending.popleft()
