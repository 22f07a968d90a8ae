"""The document store: snapshots, documents, chunks, detections, alerts, feedback, crawl runs,
discovered hosts, saved searches.

One set of SQLAlchemy models serves SQLite (the embedded default) and PostgreSQL (scale-out);
the database URL in the configuration chooses. Rows are keyed so that a re-run is idempotent:
a snapshot by content hash, a document by URL, an alert by (document, pattern).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

# Bound parameters per IN (...) query: under SQLite's limit (32766 since 3.32, 999 before).
_IN_BATCH = 900


def utcnow() -> datetime:
    return datetime.now(UTC)


def text_hash(text: str) -> str:
    """The key under which a passage's vector is reused (Chunk.text_hash)."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


# JSONB on PostgreSQL (indexable, compact), plain JSON (text) on SQLite.
PortableJSON = JSON().with_variant(JSONB(), "postgresql")

# Named constraints, so that Alembic migrations can refer to them on every backend.
NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_N_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: PortableJSON, list[Any]: PortableJSON}


class Snapshot(Base):
    """Raw bytes as fetched, kept by SHA-256 so identical content is stored once."""

    __tablename__ = "snapshots"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    final_url: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer, default=200)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    render_mode: Mapped[str] = mapped_column(String(16), default="http")
    size: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(64), default="")


class Document(Base):
    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    source: Mapped[str] = mapped_column(String(64), default="", index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    lang: Mapped[str] = mapped_column(String(8), default="und")
    kind: Mapped[str] = mapped_column(String(32), default="other")
    published: Mapped[str | None] = mapped_column(String(10), nullable=True)
    encoding: Mapped[str] = mapped_column(String(32), default="utf-8")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    entities: Mapped[list[Any]] = mapped_column(default=list)
    # Notices of one procurement (same project number and buyer) share it: see extract.fields.process_id.
    process_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Chunk(Base):
    """A sentence-level passage; its id is the stable id in the vector index."""

    __tablename__ = "chunks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # SHA-1 of the text: a passage already embedded anywhere is never embedded again.
    text_hash: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class Detection(Base):
    """The latest score of one document against one pattern, with why."""

    __tablename__ = "detections"
    __table_args__ = (UniqueConstraint("doc_id", "pattern_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    pattern_id: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(default=False)
    sentence: Mapped[str] = mapped_column(Text, default="")
    nearest_example: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_id: Mapped[str] = mapped_column(String(128), default="")
    library_version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alert(Base):
    """Raised once per (document, pattern); sending is recorded, never repeated."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("doc_id", "pattern_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    pattern_id: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    sentence: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_id: Mapped[str] = mapped_column(String(128), default="")
    library_version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    history: Mapped[list[Any]] = mapped_column(default=list)
    # Near-duplicates (alerts/dedup.py): the id of the group's head alert (its own id for a head;
    # NULL until grouped). A head's revision goes up when a later procurement stage joins it.
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Triage: a snoozed alert is not delivered before this time (alerts/views.py, deliverable).
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AlertSend(Base):
    """One delivery of a group head (at a revision) to one subscription's channel."""

    __tablename__ = "alert_sends"
    __table_args__ = (UniqueConstraint("alert_id", "subscription", "channel", "revision"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    subscription: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    target: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobLock(Base):
    """A lease that keeps one scheduled job from running twice at once, across processes and hosts."""

    __tablename__ = "job_locks"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One digest message on its way out: spooled and claimed before sending, marked after.

    A row still "sending" at start-up is a send that a crash interrupted; see alerts/outbox.py.
    """

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="sending", index=True)   # sending | sent
    subscription: Mapped[str] = mapped_column(String(64), default="")
    alert_ids: Mapped[list[Any]] = mapped_column(default=list)     # [alert group id, revision] pairs
    search_hits: Mapped[list[Any]] = mapped_column(default=list)   # [saved search id, doc id] pairs
    spool_path: Mapped[str] = mapped_column(Text)
    out_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    channel: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SavedSearch(Base):
    """A query an analyst saved into a subscription: its new results arrive in that digest.

    "New" means a page that enters the first ``top`` results after the search was saved (those
    there at saving are its baseline) and that the channel has not had."""

    __tablename__ = "saved_searches"
    __table_args__ = (UniqueConstraint("owner", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64), default="")
    query: Mapped[str] = mapped_column(Text, default="")
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)      # index.search.SearchFilters fields
    view: Mapped[str] = mapped_column(String(16), default="evidence")
    subscription: Mapped[str] = mapped_column(String(64), default="default", index=True)
    top: Mapped[int] = mapped_column(Integer, default=10)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SavedSearchHit(Base):
    """A page a saved search has shown on a channel (``*``: at saving, for every channel)."""

    __tablename__ = "saved_search_hits"
    __table_args__ = (UniqueConstraint("search_id", "doc_id", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("saved_searches.id", ondelete="CASCADE"), index=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    pattern_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CrawlRun(Base):
    __tablename__ = "crawl_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    health: Mapped[str] = mapped_column(String(16), default="ok")
    reason: Mapped[str] = mapped_column(Text, default="")


class EvidenceBundle(Base):
    """An evidence bundle as written: its manifest's SHA-256, kept apart from the bundle so that an
    edited manifest (the only file naming the URL, fetch time, status and headers) is detected."""

    __tablename__ = "evidence_bundles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(Integer, index=True)   # no foreign key: the record outlives the document
    url: Mapped[str] = mapped_column(Text, default="")
    manifest_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DiscoveredHost(Base):
    """A seller's host found by the discovery source's web searches (crawlers/discovery.py).

    Queued when first found, crawled (its result pages, capped per day), put on a re-crawl
    schedule once one of its pages alerts, and left alone for a while after a block page.
    """

    __tablename__ = "discovered_hosts"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), default="")
    query: Mapped[str] = mapped_column(Text, default="")          # the search term that found it
    urls: Mapped[list[Any]] = mapped_column(default=list)          # its result pages, in order found
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued | crawled | flagged
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_crawled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_crawl_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    backoff_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    block_reason: Mapped[str] = mapped_column(Text, default="")
    pages_day: Mapped[str] = mapped_column(String(10), default="")  # the UTC day pages_today counts
    pages_today: Mapped[int] = mapped_column(Integer, default=0)
    alerts: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    """A web/API user and their access token; only the token's SHA-256 is stored, never the token."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ListVersion(Base):
    """One load of the restriction lists (``loophole lists update``): every version is kept."""

    __tablename__ = "list_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    files: Mapped[list[Any]] = mapped_column(default=list)      # [{file, sha256, format, entries}]
    entry_count: Mapped[int] = mapped_column(Integer, default=0)


class ListEntry(Base):
    """A listed party as one version of the lists has it (index.lists.ListedEntry)."""

    __tablename__ = "list_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("list_versions.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    list_code: Mapped[str] = mapped_column(String(16))
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PartyMatch(Base):
    """A party of a document (buyer, agency, supplier, vendor) found on a list, by the lists'
    version in force when it was screened; a new version re-screens every document."""

    __tablename__ = "party_matches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    party: Mapped[str] = mapped_column(Text)
    list_code: Mapped[str] = mapped_column(String(16))
    list_name: Mapped[str] = mapped_column(Text, default="")
    entry_key: Mapped[str] = mapped_column(String(128))
    entry_name: Mapped[str] = mapped_column(Text)
    matched_name: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(32))
    score: Mapped[float] = mapped_column(Float)
    strength: Mapped[str] = mapped_column(String(16))      # listed | possible


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL, not FULL: in WAL mode a commit still survives the process being killed; only an
    # OS crash or power cut can roll back the last few, leaving the database consistent and
    # those pages unrecorded, so the next crawl fetches them again. An fsync per commit cost
    # a quarter of ingest time (7.7 against 10.0 pages/s, measured).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_plain_engine(url: str) -> Engine:
    """An engine with our JSON encoding and SQLite pragmas, schema untouched."""
    engine = create_engine(url, json_serializer=lambda obj: json.dumps(obj, ensure_ascii=False),
                           pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_engine(url: str) -> Engine:
    """An engine on a database migrated to the models (Alembic ``upgrade head``)."""
    from index.migrate import schema_lock, upgrade_schema

    engine = make_plain_engine(url)
    upgrade_schema(engine)
    # Safety net for a table added to the models before its revision is written: it is created
    # so the code works, and tests/test_migrations.py fails until the revision exists.
    with schema_lock(engine):
        Base.metadata.create_all(engine)
    return engine


class Store:
    """Sessions on one engine; callers use :meth:`session` as a unit of work."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def document_by_url(self, url: str) -> Document | None:
        with self.session() as session:
            return session.scalar(select(Document).where(Document.url == url))

    def stored_among(self, urls: Iterable[str], before: datetime | None = None) -> set[str]:
        """Those of ``urls`` whose document is stored and complete (and, given ``before``, was
        stored by then), in one query per batch: a list page checks all its links at once (one
        query per link was a fifth of crawl time). An empty hash marks an ingest that did not
        finish; such a page counts as not stored."""
        pending = list(dict.fromkeys(urls))
        found: set[str] = set()
        with self.session() as session:
            for start in range(0, len(pending), _IN_BATCH):
                batch = pending[start:start + _IN_BATCH]
                query = select(Document.url).where(Document.url.in_(batch), Document.sha256 != "")
                if before is not None:
                    query = query.where(Document.created_at <= before)
                found.update(session.scalars(query))
        return found

    def latest_crawl_run(self, source_id: str) -> CrawlRun | None:
        """The source's most recent crawl-run record (a run killed outright has none)."""
        with self.session() as session:
            return session.scalar(select(CrawlRun).where(CrawlRun.source == source_id)
                                  .order_by(CrawlRun.id.desc()).limit(1))

    def documents(self, source: str | None = None) -> list[Document]:
        with self.session() as session:
            query = select(Document).order_by(Document.id)
            if source:
                query = query.where(Document.source == source)
            return list(session.scalars(query))

    def chunks_for(self, doc_id: int) -> list[Chunk]:
        with self.session() as session:
            return list(session.scalars(select(Chunk).where(Chunk.doc_id == doc_id).order_by(Chunk.seq)))

    def close(self) -> None:
        self.engine.dispose()
