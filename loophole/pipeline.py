"""The chain after the fetch: snapshot -> extract -> document -> chunks -> vectors -> patterns -> alerts.

:class:`Monitor` owns the store, the embedder, the vector index and the detector for one data
directory. Crawler pipelines, ``loophole ingest`` and ``loophole eval`` all go through
:meth:`Monitor.ingest`, so there is one code path from bytes to alerts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from extract import ExtractedPage
from extract.attachments import save_attachments, with_attachment_text
from extract.kind import is_marketplace_url
from ground.config import ConfigError, Settings
from index.decision import DecisionModel, load_decision, untrained
from index.detect import PRC, Detector, PageFacts, PatternScore
from index.embed import Embedder, get_embedder
from index.endpoints import serves_itself, third_party_endpoints
from index.entities import PROVIDER_TYPES, EntityHit, Watchlist, load_watchlist
from index.evidence import PageGenre, load_background
from index.feedback import learned_examples
from index.patterns import PatternLibrary, load_library, load_pattern_file
from index.restricted import active_version, parties, record_matches, screener_for
from index.screening import Screener
from index.snapshots import content_hash, write_snapshot
from index.store import Alert, Chunk, Detection, Document, Snapshot, Store, text_hash
from index.textmodel import TextModels, load_text_models, opening, real_target
from index.vectors import ModelMismatch, VectorIndex
from loophole.workers import Prepared, WorkerPool, embed_page, in_order, prepare

log = logging.getLogger(__name__)


@dataclass
class RawPage:
    """What a fetch produced; the contract between crawlers and the rest of the chain."""

    url: str
    body: bytes
    final_url: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    render_mode: str = "http"
    source: str = ""
    selectors: dict[str, str] = field(default_factory=dict)
    fields: dict = field(default_factory=dict)          # structured fields the spider read
    attachments: list[dict] = field(default_factory=list)  # fetched attachments (see crawlers.items)
    screenshot: bytes | None = None                      # PNG of the rendered page (browser sources)


def raw_page(item: Mapping[str, Any]) -> RawPage:
    """A crawled page item (crawlers.items.PageItem) as the chain's RawPage."""
    return RawPage(url=item["url"], body=item["body"], final_url=item.get("final_url", item["url"]),
                   status=item.get("status", 200), headers=item.get("headers", {}),
                   fetched_at=item.get("fetched_at", datetime.now(UTC)),
                   render_mode=item.get("render_mode", "http"), source=item.get("source", ""),
                   selectors=item.get("selectors") or {}, fields=item.get("fields") or {},
                   attachments=item.get("attachments") or [], screenshot=item.get("screenshot"))


@dataclass
class IngestResult:
    url: str
    status: str                     # stored | unchanged | rejected
    doc_id: int | None = None
    reason: str = ""
    flagged: list[str] = field(default_factory=list)


# The document's language is a pseudo entity type (index.detect: ``lang:zh``, ``lang:zh-hant``).
_LANG_TYPE = re.compile(r"^lang:[a-z]{2,3}(-[a-z0-9]+)*$")


def check_entity_types(pattern_files: Iterable[Path], watchlist: Watchlist, watchlist_file: Path) -> None:
    """Refuse a pattern whose ``requires`` names an entity type the watchlist does not have: such a
    condition can never be met, so the pattern would silently never fire."""
    known = {entity.type for entity in watchlist.entities} | {PRC}
    for path in pattern_files:
        for pattern in load_pattern_file(Path(path)).patterns:
            for group in pattern.requires:
                unknown = [t for t in group if t not in known and not _LANG_TYPE.match(t)]
                if unknown:
                    raise ConfigError(
                        f"{path}: pattern {pattern.id!r}: requires names unknown entity type "
                        f"{unknown[0]!r}, which {watchlist_file} does not define; known types: "
                        f"{', '.join(sorted(known))}, or lang:<code> such as lang:zh")


class Monitor:
    def __init__(self, settings: Settings, extra_pattern_files: list[Path] | None = None) -> None:
        settings.ensure_dirs()
        self.settings = settings
        self.store = Store(settings.db_url)
        self.pattern_files = list(settings.pattern_files) + list(extra_pattern_files or [])
        self.indexed = 0  # chunk vectors added to the index (kept passages keep theirs)
        self._screener: Screener | None = None

    @cached_property
    def library(self) -> PatternLibrary:
        """The pattern files, checked against the watchlist: read once, before any page is scored."""
        library = load_library(self.pattern_files)
        check_entity_types(self.pattern_files, self.watchlist, self.settings.watchlist_file)
        return library

    def check_patterns(self) -> PatternLibrary:
        """Load and check the pattern files now (a file the watchlist cannot satisfy raises ConfigError),
        so a command fails before its first page rather than at it."""
        return self.library

    @cached_property
    def watchlist(self) -> Watchlist:
        return load_watchlist(self.settings.watchlist_file)

    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings.embedding.model, self.settings.embedding.batch_size)

    @cached_property
    def detector(self) -> Detector:
        """The decision model fitted for this embedding model, and examples learned from verdicts."""
        decision = load_decision(self.settings.decision_files, self.embedder.model_id)
        if decision is None:
            log.warning("no decision model in %s: pages are scored but nothing alerts until `loophole calibrate`",
                        ", ".join(map(str, self.settings.decision_files)))
            decision = untrained(self.embedder.model_id)
        decision = with_usable_stages(decision, self.text_models)
        return Detector(self.library, self.embedder, decision, learned_examples(self.store), self.watchlist,
                        load_background(self.settings.background_file))

    @cached_property
    def text_models(self) -> TextModels | None:
        return load_text_models(self.settings.text_model_files)

    @cached_property
    def vectors(self) -> VectorIndex:
        """The saved index if it holds exactly the store's chunks; else rebuilt from the store.

        The store is the truth: a crash between a commit and the next index save, or a damaged
        index file, costs a re-embedding, never a lost or phantom passage.
        """
        try:
            index = VectorIndex.load(self.settings.index_dir, self.embedder.model_id, self.embedder.dimension,
                                     self.settings.index)
        except ModelMismatch:
            raise
        except (RuntimeError, ValueError, OSError) as exc:  # faiss raises RuntimeError on a damaged file
            log.warning("vector index in %s is unreadable (%s); rebuilding from the store",
                        self.settings.index_dir, exc)
            return self._rebuild_index()
        with self.store.session() as session:
            stored = set(session.scalars(select(Chunk.id)))
        if stored != set(index.ids().tolist()):
            log.warning("vector index holds %d vectors for %d chunks; rebuilding from the store",
                        len(index), len(stored))
            index = self._rebuild_index()
        return index

    def _rebuild_index(self) -> VectorIndex:
        index = VectorIndex(self.embedder.dimension, self.embedder.model_id, self.settings.index)
        with self.store.session() as session:
            rows = session.execute(select(Chunk.id, Chunk.text).order_by(Chunk.id)).all()
        # Batches of 1024: large enough for the embedder's own batching, small enough to bound memory.
        for start in range(0, len(rows), 1024):
            batch = rows[start:start + 1024]
            index.add(np.array([r.id for r in batch]), self.embedder.encode([r.text for r in batch]))
        index.save(self.settings.index_dir)
        return index

    def ingest(self, raw: RawPage, prepared: Prepared | None = None) -> IngestResult:
        """Idempotent: the same bytes at the same URL do no further work."""
        sha256 = content_hash(raw.body)
        early = self._precheck(raw, sha256)
        if early is not None:
            return early
        if prepared is None:
            content_type = raw.headers.get("content-type") or raw.headers.get("Content-Type")
            prepared = prepare(self.embedder, raw.body, raw.final_url or raw.url, content_type, raw.selectors)
        return self._store(raw, sha256, prepared)

    def ingest_item(self, item: Mapping[str, Any]) -> IngestResult:
        """:meth:`ingest` for a crawled page item: the crawl's item pipeline calls this
        (crawlers.pipelines, through the ``LOOPHOLE_INGEST`` setting that names :func:`shared_monitor`)."""
        return self.ingest(raw_page(item))

    def ingest_all(self, raws: Iterable[RawPage], pool: WorkerPool | None = None) -> Iterator[IngestResult]:
        """Each page's result in order; with a pool, pages are extracted and embedded in its
        worker processes (loophole.workers) while this one stores and scores."""
        if pool is None:
            yield from (self.ingest(raw) for raw in raws)
            return

        def start(raw: RawPage) -> Future[Prepared] | None:
            if self._precheck(raw, content_hash(raw.body)) is not None:
                return None
            content_type = raw.headers.get("content-type") or raw.headers.get("Content-Type")
            return pool.submit(raw.body, raw.final_url or raw.url, content_type, raw.selectors)

        for raw, job in in_order(raws, start, pool.window):
            yield self.ingest(raw, None if job is None else job.result())

    def worker_pool(self, workers: int) -> WorkerPool | None:
        """Worker processes for ingest_all, or None for in-process (``workers`` <= 1)."""
        if workers <= 1:
            return None
        return WorkerPool(workers, self.settings.embedding.model, self.settings.embedding.batch_size)

    def _precheck(self, raw: RawPage, sha256: str) -> IngestResult | None:
        """The result for a page that needs no extraction: unchanged, or too large."""
        existing = self.store.document_by_url(raw.url)
        if existing is not None and existing.sha256 == sha256:
            return IngestResult(raw.url, "unchanged", existing.id)
        if len(raw.body) > self.settings.crawl.max_page_bytes:
            reason = f"{len(raw.body)} bytes, over crawl.max_page_bytes ({self.settings.crawl.max_page_bytes})"
            log.warning("not stored: %s (%s)", raw.url, reason)
            return IngestResult(raw.url, "rejected", reason=reason)
        return None

    def _store(self, raw: RawPage, sha256: str, prepared: Prepared) -> IngestResult:
        if prepared.page is None:
            log.warning("not stored: %s (%s)", raw.url, prepared.error)
            return IngestResult(raw.url, "rejected", reason=prepared.error)
        self._save_snapshot(raw, sha256)
        page = self._with_extras(raw, prepared.page)
        if page.text != prepared.page.text:  # attachment text joined the page: embed it all again
            prepared = embed_page(self.embedder, page)
        page = in_owners_voice(page, raw.final_url or raw.url, self.watchlist)
        entities = self.watchlist.find(page.entity_text())
        doc_id = self._save_document(raw, sha256, page, entities)
        flagged = self._index_and_score(doc_id, page, entities, prepared, raw.final_url or raw.url)
        self._screen_parties(doc_id, page.fields, entities)
        self._mark_complete(doc_id, sha256)
        return IngestResult(raw.url, "stored", doc_id, flagged=flagged)

    def screener(self) -> Screener | None:
        """The lists in force, reloaded when ``loophole lists update`` (in any process) loaded a
        newer version; None while no list was ever loaded."""
        version = active_version(self.store)
        if version is not None and (self._screener is None or self._screener.version != version):
            self._screener = screener_for(self.store, self.embedder, self.settings.screening)
        return self._screener if version is not None else None

    def _screen_parties(self, doc_id: int, fields: dict, entities: list[EntityHit]) -> None:
        screener = self.screener()
        if screener is None:
            return
        doc_parties = parties(fields, [hit.__dict__ for hit in entities])
        with self.store.session() as session:
            record_matches(session, screener, [(doc_id, doc_parties)])

    def _mark_complete(self, doc_id: int, sha256: str) -> None:
        """The hash is written last: a process killed mid-ingest leaves it empty, so the next
        run does the page again instead of taking it for unchanged (and losing its alerts)."""
        with self.store.session() as session:
            doc = session.get(Document, doc_id)
            if doc is not None:
                doc.sha256 = sha256

    def _save_snapshot(self, raw: RawPage, sha256: str, path: str | None = None, size: int | None = None) -> None:
        if path is None:
            path = str(write_snapshot(self.settings.snapshot_dir, raw.body)[1])
        with self.store.session() as session:
            if session.get(Snapshot, sha256) is None:
                session.add(Snapshot(sha256=sha256, url=raw.url, final_url=raw.final_url or raw.url,
                                     status=raw.status, headers=dict(raw.headers), fetched_at=raw.fetched_at,
                                     render_mode=raw.render_mode, size=len(raw.body) if size is None else size,
                                     path=path, source=raw.source))

    def _with_extras(self, raw: RawPage, page: ExtractedPage) -> ExtractedPage:
        """Attachments (snapshotted, text appended), the spider's fields and the screenshot."""
        attachments = save_attachments(raw.attachments, partial(write_snapshot, self.settings.snapshot_dir))
        for attachment in attachments:
            if attachment.sha256:
                fetched_at = attachment.fetched_at or raw.fetched_at
                self._save_snapshot(RawPage(url=attachment.url, body=b"", headers=attachment.headers,
                                            fetched_at=fetched_at, render_mode="attachment", source=raw.source),
                                    attachment.sha256, attachment.path, attachment.size)
        fields = {**page.fields, **raw.fields}
        if attachments:
            fields["attachments"] = [a.record() for a in attachments]
        if raw.screenshot:
            shot_hash, shot_path = write_snapshot(self.settings.snapshot_dir, raw.screenshot)
            self._save_snapshot(RawPage(url=raw.url, body=b"", headers={"content-type": "image/png"},
                                        fetched_at=raw.fetched_at, render_mode="screenshot", source=raw.source),
                                shot_hash, str(shot_path), len(raw.screenshot))
            fields["screenshot_sha256"] = shot_hash
        return replace(page, text=with_attachment_text(page.text, attachments), fields=fields)

    def _save_document(self, raw: RawPage, sha256: str, page: ExtractedPage, entities: list[EntityHit]) -> int:
        values = dict(source=raw.source, sha256="", title=page.title, text=page.text, lang=page.lang,
                      kind=page.kind, published=page.date, encoding=page.encoding, fields=page.fields,
                      process_id=page.fields.get("process_id"),
                      entities=[hit.__dict__ for hit in entities], updated_at=datetime.now(UTC))
        with self.store.session() as session:
            doc = session.scalar(select(Document).where(Document.url == raw.url))
            if doc is None:
                doc = Document(url=raw.url, **values)
                session.add(doc)
            else:
                for key, value in values.items():
                    setattr(doc, key, value)
            session.flush()
            return doc.id

    def _replace_chunks(self, doc_id: int, texts: list[str]) -> tuple[list[int], list[int]]:
        """Store the document's chunks, keeping the rows (and vectors) of passages that did not change.

        Returns the chunk ids in order and the ids of rows that are new (they need vectors).
        """
        index = self.vectors  # loaded (and checked against the store) before the store changes
        hashes = [text_hash(text) for text in texts]
        with self.store.session() as session:
            old: dict[str | None, list[Chunk]] = {}
            for row in session.scalars(select(Chunk).where(Chunk.doc_id == doc_id).order_by(Chunk.seq)):
                old.setdefault(row.text_hash, []).append(row)
            rows: list[Chunk] = []
            added: list[Chunk] = []
            for seq, (text, digest) in enumerate(zip(texts, hashes, strict=True)):
                kept = old.get(digest)
                if kept:
                    row = kept.pop(0)
                else:
                    row = Chunk(doc_id=doc_id, text=text, text_hash=digest)
                    added.append(row)
                row.seq = seq
                rows.append(row)
            stale = [row.id for left in old.values() for row in left]
            if stale:
                session.execute(delete(Chunk).where(Chunk.id.in_(stale)))
            session.add_all(rows)
            session.flush()
            new_ids = [row.id for row in added]
        index.remove(np.array(stale))
        return [row.id for row in rows], new_ids

    def _index_new_chunks(self, ids: list[int], new_ids: list[int], vectors: np.ndarray) -> None:
        """Only passages new to this document go into the index; kept rows keep their vectors
        (unless an earlier attempt at this page failed before its vectors were added)."""
        fresh = set(new_ids)
        todo = new_ids + self.vectors.missing([i for i in ids if i not in fresh])
        position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.vectors.add(np.array(todo), vectors[[position[i] for i in todo]])
        self.indexed += len(todo)

    def _index_and_score(self, doc_id: int, page: ExtractedPage, entities: list[EntityHit],
                         prepared: Prepared, url: str) -> list[str]:
        texts = prepared.units[:prepared.chunk_count]
        ids, new_ids = self._replace_chunks(doc_id, texts)
        self._index_new_chunks(ids, new_ids, prepared.vectors[:prepared.chunk_count])
        facts = page_facts(page, url, entities, self.text_models, self.watchlist.provider_domains)
        scores = self.detector.score(prepared.units, prepared.vectors, facts)
        self._record(doc_id, scores)
        return [s.pattern_id for s in scores if s.flagged]

    def _record(self, doc_id: int, scores: list[PatternScore]) -> None:
        model_id, version = self.embedder.model_id, self.library.version
        with self.store.session() as session:
            session.execute(delete(Detection).where(Detection.doc_id == doc_id))
            for s in scores:
                session.add(Detection(doc_id=doc_id, pattern_id=s.pattern_id, score=s.score, flagged=s.flagged,
                                      sentence=s.sentence, nearest_example=s.nearest_example, reasons=s.reasons,
                                      model_id=model_id, library_version=version))
                if s.flagged and session.scalar(select(Alert.id).where(
                        Alert.doc_id == doc_id, Alert.pattern_id == s.pattern_id)) is None:
                    session.add(Alert(doc_id=doc_id, pattern_id=s.pattern_id, score=s.score, sentence=s.sentence,
                                      reasons=s.reasons, model_id=model_id, library_version=version,
                                      history=[{"event": "created", "at": datetime.now(UTC).isoformat()}]))

    def flush(self) -> None:
        """Persist the vector index; call after a batch (a crash before it is repaired on load)."""
        if "vectors" in self.__dict__:
            self.vectors.save(self.settings.index_dir)

    def close(self) -> None:
        self.flush()
        self.store.close()


_MONITORS: dict[tuple[str, str], Monitor] = {}


def shared_monitor(settings: Settings) -> Monitor:
    """The process's Monitor for a data directory: one vector index in memory, one writer."""
    key = (str(settings.home), settings.db_url)
    if key not in _MONITORS:
        _MONITORS[key] = Monitor(settings)
    return _MONITORS[key]


def with_usable_stages(decision: DecisionModel, text_models: TextModels | None) -> DecisionModel:
    """The decision without the stages whose real-page text model is not among the loaded text models (a
    `calibrate` into the data directory writes text models without it): a stage reading a logit of 0 for every page
    would decide on nothing, so the pattern's weights decide instead, and the user is told."""
    missing = [pid for pid in decision.stages if text_models is None or real_target(pid) not in text_models.weights]
    for pid in missing:
        log.warning("pattern %s: its stage needs the text model %s, which the loaded text models lack; "
                    "its weights decide until `loophole recalibrate --stage`", pid, real_target(pid))
    return decision.model_copy(update={"stages": {k: v for k, v in decision.stages.items() if k not in missing}})


def page_facts(page: ExtractedPage, url: str, entities: list[EntityHit], text_models: TextModels | None,
               provider_domains: tuple[str, ...]) -> PageFacts:
    """What the detector reads about a page besides its units: kind, entities, the page text models'
    logits on its opening, and the page-level facts every pattern weighs (genre cues, whose site,
    what API it hands out). One function for ingest and the bench, so the bench times what ingest does."""
    start = opening(page.title, page.text)
    text_scores = text_models.scores(start) if text_models else {}
    endpoints = third_party_endpoints(start, provider_domains)
    genre = PageGenre(page.genre, page.own_site, page.provider_site, bool(endpoints), serves_itself(url, endpoints))
    return PageFacts(page.kind, page.lang, entities, genre, text_scores, start)


def in_owners_voice(page: ExtractedPage, url: str, watchlist: Watchlist) -> ExtractedPage:
    """A news item on a company's own site is its press release, not reporting about it: the
    vendor's or cloud's own page is marketing whatever its genre cues say ("/news/", 记者)."""
    owner = watchlist.owner_of(url)
    if owner is None or is_marketplace_url(url):
        return page
    provider = owner.type in PROVIDER_TYPES   # its docs and price lists name what resellers name
    return replace(page, own_site=not provider, provider_site=provider,
                   kind="vendor-marketing" if page.kind == "news-commentary" else page.kind)
