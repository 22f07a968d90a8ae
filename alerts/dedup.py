"""Near-duplicate alerts become one: the same notice on several portals, a republished copy,
or the stages of one procurement (tender, amendment, award) share a group.

Every alert row stays (it is evidence with its own URL and saved copy); ``Alert.group_id``
points at the group's head, the one alert that digests, feeds and exports show. Two alerts of
the same pattern belong together when their documents carry the same project number and
buyer, or when their texts nearly coincide. A later *stage* (a notice type the group has not
seen) bumps the head's revision so subscribers hear about it again; a mere republication
does not.

Grouping is done lazily, before every digest or export, so the ingest path stays unchanged.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from index.store import Alert, Document, Store

SHINGLE = 5              # characters per shingle: short enough for Chinese, long enough to be specific
MIN_SHINGLES = 40        # texts shorter than this are compared by title only
CONTAINMENT = 0.8        # share of the shorter text's shingles found in the longer one
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_BRACKETS = str.maketrans({"〔": "(", "〕": ")", "（": "(", "）": ")", "[": "(", "]": ")", "【": "(", "】": ")"})


def normalise(value: str) -> str:
    """Lower case, full-width brackets folded, whitespace and punctuation removed."""
    return _PUNCT.sub("", value.translate(_BRACKETS).lower())


def procurement_key(fields: dict | None) -> str | None:
    """``project_no|buyer``, normalised; None unless the notice names both."""
    fields = fields or {}
    project_no, buyer = fields.get("project_no"), fields.get("buyer")
    if not project_no or not buyer:
        return None
    return f"{normalise(str(project_no))}|{normalise(str(buyer))}"


def shingles(text: str) -> frozenset[int]:
    flat = normalise(text)
    return frozenset(zlib.crc32(flat[i:i + SHINGLE].encode()) for i in range(max(0, len(flat) - SHINGLE + 1)))


def stage_of(doc: Document) -> str:
    return str((doc.fields or {}).get("notice_type") or doc.kind or "notice")


@dataclass
class _Head:
    alert: Alert
    key: str | None
    title: str
    text: frozenset[int]
    stages: set[str] = field(default_factory=set)

    def matches(self, key: str | None, title: str, text: frozenset[int]) -> bool:
        if key and self.key:
            return key == self.key
        if len(text) < MIN_SHINGLES or len(self.text) < MIN_SHINGLES:
            return bool(title) and title == self.title
        overlap = len(text & self.text) / min(len(text), len(self.text))
        return overlap >= CONTAINMENT


def _load_heads(session: Session) -> dict[str, list[_Head]]:
    heads: dict[str, list[_Head]] = {}
    rows = session.execute(select(Alert, Document).join(Document, Alert.doc_id == Document.id)
                           .where(Alert.group_id == Alert.id).order_by(Alert.id)).all()
    for alert, doc in rows:
        heads.setdefault(alert.pattern_id, []).append(
            _Head(alert, procurement_key(doc.fields), normalise(doc.title), shingles(doc.text)))
    members = session.execute(select(Alert.group_id, Document).join(Document, Alert.doc_id == Document.id)
                              .where(Alert.group_id.is_not(None))).all()
    by_id = {head.alert.id: head for group in heads.values() for head in group}
    for group_id, doc in members:
        if group_id in by_id:
            by_id[group_id].stages.add(stage_of(doc))
    return heads


def _join(head: _Head, alert: Alert, doc: Document, now: datetime) -> None:
    """Attach ``alert`` to ``head``; a new stage makes the head news again."""
    alert.group_id = head.alert.id
    stage = stage_of(doc)
    event = {"event": "merged", "alert_id": alert.id, "url": doc.url, "source": doc.source, "stage": stage,
             "at": now.isoformat()}
    alert.history = [*alert.history, {"event": "grouped", "head": head.alert.id, "at": now.isoformat()}]
    if stage not in head.stages:
        head.stages.add(stage)
        head.alert.revision = (head.alert.revision or 1) + 1
        event["event"] = "updated"
    head.alert.score = max(head.alert.score, alert.score)
    head.alert.updated_at = now
    head.alert.history = [*head.alert.history, event]


def assign_groups(store: Store) -> int:
    """Group every alert not grouped yet, oldest first; returns how many joined an existing group."""
    now = datetime.now(UTC)
    joined = 0
    with store.session() as session:
        pending = session.execute(select(Alert, Document).join(Document, Alert.doc_id == Document.id)
                                  .where(Alert.group_id.is_(None)).order_by(Alert.id)).all()
        if not pending:
            return 0
        heads = _load_heads(session)
        for alert, doc in pending:
            key, title, text = procurement_key(doc.fields), normalise(doc.title), shingles(doc.text)
            group = heads.setdefault(alert.pattern_id, [])
            head = next((h for h in group if h.matches(key, title, text)), None)
            if head is None:
                alert.group_id = alert.id
                alert.revision = alert.revision or 1
                group.append(_Head(alert, key, title, text, {stage_of(doc)}))
            else:
                _join(head, alert, doc, now)
                joined += 1
    return joined
