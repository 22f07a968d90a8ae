"""Alert groups as readers see them: one head per near-duplicate group with all its sources.

Digests, the Atom feed and exports all read alerts through :func:`load_views`, so a filter
or a field means the same thing in every channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from alerts.dedup import stage_of
from ground.config import Subscription
from index.restricted import match_dict, matches_for
from index.store import Alert, AlertSend, Document, Feedback

CONTEXT_CHARS = 90


def safe_link(url: str | None) -> str | None:
    """Only http(s) URLs become links; javascript:, data: and the like are shown as text."""
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass
class Member:
    """One document in a group: where the notice appeared and at which stage."""

    alert_id: int
    source: str
    url: str
    link: str | None
    title: str
    stage: str
    date: str | None


@dataclass
class AlertView:
    id: int
    revision: int
    pattern_id: str
    score: float
    title: str
    url: str
    link: str | None
    source: str
    date: str | None
    stage: str
    sentence: str
    before: str
    after: str
    buyer: str
    vendor: str
    amount: str
    entities: list[str]
    entity_ids: list[str]
    snapshot: str
    created_at: datetime
    updated_at: datetime | None
    members: list[Member] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    saved_copy: str | None = None
    doc_ids: list[int] = field(default_factory=list)
    # Parties of the group's documents found on a restriction list (index.restricted.match_dict),
    # listed ones first; a "possible" one is a lead for a person to check, never a fact.
    parties: list[dict[str, Any]] = field(default_factory=list)

    @property
    def listed(self) -> list[dict[str, Any]]:
        return [p for p in self.parties if p["strength"] == "listed"]

    @property
    def possible(self) -> list[dict[str, Any]]:
        return [p for p in self.parties if p["strength"] != "listed"]

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(m.source for m in self.members))

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(m.stage for m in self.members))


def context(text: str, sentence: str) -> tuple[str, str]:
    """The text just before and after the decisive sentence, so a reader sees it in place."""
    at = text.find(sentence) if sentence else -1
    if at < 0:
        return "", ""
    before = text[max(0, at - CONTEXT_CHARS):at]
    after = text[at + len(sentence):at + len(sentence) + CONTEXT_CHARS]
    return (("…" if at > CONTEXT_CHARS else "") + before.lstrip(),
            after.rstrip() + ("…" if at + len(sentence) + CONTEXT_CHARS < len(text) else ""))


def format_amount(fields: dict[str, Any]) -> str:
    amounts = fields.get("amounts") or []
    if not amounts or not isinstance(amounts[0], dict):
        return ""
    first = amounts[0]
    try:
        return f"{first.get('label', '')} {first.get('currency', '')} {float(first['amount']):,.0f}".strip()
    except (KeyError, TypeError, ValueError):
        return ""


def _vendor(doc: Document) -> str:
    suppliers = (doc.fields or {}).get("suppliers") or []
    if suppliers:
        return str(suppliers[0])
    return next((e["name"] for e in doc.entities or [] if e.get("type") == "sanctioned-vendor"), "")


def _view(alert: Alert, doc: Document, public_base_url: str | None) -> AlertView:
    fields = doc.fields or {}
    before, after = context(doc.text, alert.sentence)
    entities = doc.entities or []
    base = (public_base_url or "").rstrip("/")
    return AlertView(
        id=alert.id, revision=alert.revision or 1, pattern_id=alert.pattern_id, score=alert.score,
        title=doc.title or doc.url, url=doc.url, link=safe_link(doc.url), source=doc.source, date=doc.published,
        stage=stage_of(doc), sentence=alert.sentence, before=before, after=after,
        buyer=str(fields.get("buyer") or ""), vendor=_vendor(doc), amount=format_amount(fields),
        entities=list(dict.fromkeys(e["name"] for e in entities))[:10],
        entity_ids=[str(e.get("id", "")) for e in entities], snapshot=doc.sha256,
        created_at=aware(alert.created_at) or datetime.now(UTC), updated_at=aware(alert.updated_at),
        history=list(alert.history or []),
        saved_copy=safe_link(f"{base}/snapshots/{doc.sha256}") if base else None, doc_ids=[doc.id])


def heads_query() -> Select:
    return (select(Alert, Document).join(Document, Alert.doc_id == Document.id)
            .where(Alert.group_id == Alert.id))


def deliverable(now: datetime) -> ColumnElement[bool]:
    """Group heads an analyst has not withheld: analysts triage to stop noise, so every channel
    (email, webhooks, the Atom feed) leaves out a group whose latest verdict, on any of its
    documents, is a dismissal, and a group with an alert snoozed past ``now``. A confirmation is
    a verdict too: after one, the group is delivered again as usual.
    """
    member = aliased(Alert)
    latest_verdict = (select(Feedback.verdict).join(member, member.doc_id == Feedback.doc_id)
                      .where(member.group_id == Alert.id,
                             or_(Feedback.pattern_id.is_(None), Feedback.pattern_id == member.pattern_id))
                      .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(1)
                      .correlate(Alert).scalar_subquery())
    snoozed = aliased(Alert)
    return and_(or_(latest_verdict.is_(None), latest_verdict != "dismiss"),
                ~exists().where(snoozed.group_id == Alert.id, snoozed.snoozed_until > now))


def _attach_members(session: Session, views: dict[int, AlertView]) -> None:
    rows = session.execute(select(Alert, Document).join(Document, Alert.doc_id == Document.id)
                           .where(Alert.group_id.in_(list(views))).order_by(Alert.id)).all()
    for alert, doc in rows:
        view = views[alert.group_id or alert.id]
        view.members.append(Member(alert.id, doc.source, doc.url, safe_link(doc.url),
                                                     doc.title or doc.url, stage_of(doc), doc.published))
        if doc.id not in view.doc_ids:
            view.doc_ids.append(doc.id)
        if alert.id != alert.group_id:
            view.entities = list(dict.fromkeys([*view.entities, *(e["name"] for e in doc.entities or [])]))[:10]
            view.entity_ids += [str(e.get("id", "")) for e in doc.entities or []]


def _attach_parties(session: Session, views: list[AlertView]) -> None:
    """Each group's listed parties: one row per (role, party, entry), listed before possible."""
    found = matches_for(session, {doc_id for view in views for doc_id in view.doc_ids})
    for view in views:
        rows = sorted((row for doc_id in view.doc_ids for row in found.get(doc_id, [])),
                      key=lambda r: (r.strength != "listed", -r.score, r.id))
        seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in rows:
            seen.setdefault((row.role, row.party, row.entry_key), match_dict(row))
        view.parties = list(seen.values())


def load_views(session: Session, query: Select, public_base_url: str | None = None) -> list[AlertView]:
    """Group heads selected by ``query`` (built on :func:`heads_query`): those with a listed
    party first (trust-and-safety acts on them first), then by best score."""
    views = {alert.id: _view(alert, doc, public_base_url)
             for alert, doc in session.execute(query.order_by(Alert.score.desc(), Alert.id)).all()}
    for start in range(0, len(views), 500):
        chunk = {k: views[k] for k in list(views)[start:start + 500]}
        _attach_members(session, chunk)
        _attach_parties(session, list(chunk.values()))
    return sorted(views.values(), key=lambda v: not v.listed)


def matches(view: AlertView, sub: Subscription) -> bool:
    """The subscription's pattern, score, source and entity filters (any member may satisfy them)."""
    if sub.patterns and view.pattern_id not in sub.patterns:
        return False
    if view.score < sub.min_score:
        return False
    if sub.sources and not set(view.sources) & set(sub.sources):
        return False
    if sub.entities:
        wanted = {e.casefold() for e in sub.entities}
        have = {e.casefold() for e in [*view.entities, *view.entity_ids]}
        if not wanted & have:
            return False
    return True


def _iso(value: datetime | None) -> str:
    stamp = aware(value)
    return stamp.isoformat() if stamp else ""


def history(session: Session, alert_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each head's full record: its own events, every send, and feedback on any member document."""
    ids = list(alert_ids)
    events: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    heads = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(ids)))}
    for alert in heads.values():
        events[alert.id].extend(alert.history or [])
    for send in session.scalars(select(AlertSend).where(AlertSend.alert_id.in_(ids))):
        events[send.alert_id].append({"event": "sent", "subscription": send.subscription, "channel": send.channel,
                                      "revision": send.revision, "at": _iso(send.sent_at)})
    members = session.execute(select(Alert.group_id, Alert.doc_id, Alert.pattern_id)
                              .where(Alert.group_id.in_(ids))).all()
    by_doc: dict[int, list[tuple[int, str]]] = {}
    for group_id, doc_id, pattern_id in members:
        by_doc.setdefault(doc_id, []).append((group_id or 0, pattern_id))
    for fb in session.scalars(select(Feedback).where(Feedback.doc_id.in_(list(by_doc)))):
        for group_id, pattern_id in by_doc[fb.doc_id]:
            if fb.pattern_id in (None, pattern_id):
                events[group_id].append({"event": "feedback", "verdict": fb.verdict, "note": fb.note,
                                         "doc_id": fb.doc_id, "at": _iso(fb.created_at)})
    for items in events.values():
        items.sort(key=lambda e: str(e.get("at", "")))
    return events
