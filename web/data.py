"""What each page and API answer shows, read from the store (no HTTP here, no HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ground.sources import Source
from index.decision import DEFAULT_CUT
from index.patterns import PatternLibrary
from index.restricted import match_dict, matches_for
from index.search import SearchEngine, SearchResult, highlight
from index.store import Alert, CrawlRun, Detection, Document, Snapshot, Store

ALERT_STATUSES = ("new", "confirmed", "dismissed")


@dataclass
class DocumentView:
    doc: Document
    segments: list[tuple[str, bool]]
    decisive: list[Detection]
    detections: list[Detection]
    alerts: list[Alert]
    stages: list[Document]
    similar: list[SearchResult]
    snapshot: Snapshot | None
    thresholds: dict[str, float] = field(default_factory=dict)
    parties: list[dict[str, Any]] = field(default_factory=list)   # listed (and possibly listed) parties

    def as_dict(self) -> dict[str, Any]:
        d = self.doc
        return {"id": d.id, "url": d.url, "title": d.title, "source": d.source, "kind": d.kind, "lang": d.lang,
                "published": d.published, "fields": d.fields, "entities": d.entities, "text": d.text,
                "detections": [detection_dict(x, self.thresholds) for x in self.detections],
                "alerts": [alert_dict(a) for a in self.alerts], "listed_parties": self.parties,
                "stages": [{"id": s.id, "url": s.url, "title": s.title, "notice_type": (s.fields or {}).get(
                    "notice_type")} for s in self.stages],
                "similar": [{"id": s.doc_id, "url": s.url, "title": s.title, "score": round(s.score, 4)}
                            for s in self.similar],
                "snapshot_sha256": self.snapshot.sha256 if self.snapshot else None}


def detection_dict(d: Detection, thresholds: dict[str, float]) -> dict[str, Any]:
    return {"pattern_id": d.pattern_id, "score": d.score, "flagged": d.flagged, "sentence": d.sentence,
            "nearest_example": d.nearest_example, "reasons": d.reasons,
            "threshold": thresholds.get(d.pattern_id), "model_id": d.model_id}


def alert_dict(a: Alert, doc: Document | None = None,
               parties: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    row = {"id": a.id, "doc_id": a.doc_id, "pattern_id": a.pattern_id, "score": a.score, "sentence": a.sentence,
           "reasons": a.reasons, "status": a.status, "created_at": a.created_at.isoformat(),
           "history": a.history, "model_id": a.model_id, "library_version": a.library_version}
    if doc is not None:
        row.update(url=doc.url, title=doc.title, kind=doc.kind, lang=doc.lang)
    if parties is not None:
        row["listed_parties"] = parties
    return row


def thresholds(library: PatternLibrary) -> dict[str, float]:
    """The probability above which each pattern alerts (the pattern file's, else the model's default)."""
    return {p.id: p.threshold if p.threshold is not None else DEFAULT_CUT for p in library.patterns}


def document_view(store: Store, engine: SearchEngine | None, library: PatternLibrary,
                  doc_id: int) -> DocumentView | None:
    with store.session() as session:
        doc = session.get(Document, doc_id)
        if doc is None:
            return None
        detections = list(session.scalars(select(Detection).where(Detection.doc_id == doc_id)
                                          .order_by(Detection.score.desc())))
        alerts = list(session.scalars(select(Alert).where(Alert.doc_id == doc_id).order_by(Alert.id)))
        snapshot = session.get(Snapshot, doc.sha256)
        parties = [match_dict(row) for row in matches_for(session, [doc_id])[doc_id]]
    decisive = [d for d in detections if d.flagged] or detections[:1]
    stages = linked_stages(store, doc)
    similar = engine.similar(doc_id) if engine is not None else []
    return DocumentView(doc, highlight_sentences(doc.text, [d.sentence for d in decisive]), decisive, detections,
                        alerts, stages, similar, snapshot, thresholds(library), parties)


def highlight_sentences(text: str, sentences: list[str]) -> list[tuple[str, bool]]:
    """The page text with the decisive sentences marked where they appear verbatim."""
    found = [s for s in sentences if s and len(s) >= 6 and s in text]
    return highlight(text, found) if found else [(text, False)]


def linked_stages(store: Store, doc: Document) -> list[Document]:
    """Other notices of the same procurement: same project number and the same buyer."""
    fields = doc.fields or {}
    project_no, buyer = fields.get("project_no"), fields.get("buyer")
    if not project_no or not buyer:
        return []
    with store.session() as session:
        rows = session.scalars(select(Document).where(Document.fields["project_no"].as_string() == project_no,
                                                      Document.id != doc.id).order_by(Document.published))
        return [row for row in rows if (row.fields or {}).get("buyer") == buyer]


def list_alerts(store: Store, status: str | None = None, pattern: str | None = None,
                since: datetime | None = None, limit: int = 200) -> list[tuple[Alert, Document]]:
    query = select(Alert, Document).join(Document, Document.id == Alert.doc_id)
    if status:
        query = query.where(Alert.status == status)
    if pattern:
        query = query.where(Alert.pattern_id == pattern)
    if since is not None:
        query = query.where(Alert.created_at >= since)
    query = query.order_by(Alert.created_at.desc(), Alert.score.desc()).limit(limit)
    with store.session() as session:
        return [(row.Alert, row.Document) for row in session.execute(query)]


def parties_of(store: Store, doc_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each document's listed and possibly listed parties, listed first."""
    with store.session() as session:
        return {doc_id: [match_dict(row) for row in rows] for doc_id, rows in matches_for(session, doc_ids).items()}


def document_exists(store: Store, doc_id: int) -> bool:
    with store.session() as session:
        return session.scalar(select(Document.id).where(Document.id == doc_id)) is not None


def document_title(store: Store, doc_id: int) -> tuple[int, str] | None:
    """(id, title or URL) of a document, for the "more like" heading."""
    with store.session() as session:
        row = session.execute(select(Document.id, Document.title, Document.url).where(Document.id == doc_id)).first()
    return (row.id, row.title or row.url) if row else None


def get_alert(store: Store, alert_id: int) -> Alert | None:
    with store.session() as session:
        return session.get(Alert, alert_id)


@dataclass
class PatternStats:
    scored: int = 0
    flagged: int = 0
    last_evaluated: datetime | None = None
    library_version: str = ""
    alerts: dict[str, int] = field(default_factory=dict)


def pattern_stats(store: Store) -> dict[str, PatternStats]:
    """Per pattern: documents scored and flagged, when last scored (and with which library), triage."""
    stats: dict[str, PatternStats] = {}
    with store.session() as session:
        for row in session.execute(select(Detection.pattern_id, func.count(), func.sum(Detection.flagged),
                                          func.max(Detection.created_at), func.max(Detection.library_version))
                                   .group_by(Detection.pattern_id)):
            stats[row[0]] = PatternStats(row[1], int(row[2] or 0), row[3], row[4] or "")
        for pid, status, count in session.execute(select(Alert.pattern_id, Alert.status, func.count())
                                                  .group_by(Alert.pattern_id, Alert.status)):
            stats.setdefault(pid, PatternStats()).alerts[status] = count
    return stats


@dataclass
class SourceRow:
    id: str
    title: str
    kind: str
    base_url: str
    schedule: str
    documents: int
    last_run: CrawlRun | None


def source_rows(store: Store, sources: dict[str, Source]) -> list[SourceRow]:
    """Configured sources and any other source that has documents, with their latest crawl run."""
    with store.session() as session:
        counts = dict(session.execute(select(Document.source, func.count()).group_by(Document.source)).all())
        latest = {}
        for run in session.scalars(select(CrawlRun).order_by(CrawlRun.started_at)):
            latest[run.source] = run
    rows = [SourceRow(s.id, s.title, s.kind, s.base_url, s.schedule, counts.get(s.id, 0), latest.get(s.id))
            for s in sources.values()]
    known = set(sources)
    rows += [SourceRow(name or "(none)", "", "", "", "", count, latest.get(name))
             for name, count in sorted(counts.items()) if name not in known]
    return rows


def snapshot_text(snapshot: Snapshot, encoding: str) -> str:
    """The saved bytes decoded for display as plain text (never served as HTML)."""
    data = Path(snapshot.path).read_bytes()
    try:
        return data.decode(encoding or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")
