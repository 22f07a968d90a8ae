"""Analyst feedback on a document: a Feedback row, and the matching alerts confirmed or dismissed.

Minimal version written for the web triage (issue 6); the detection work owns this module
and may extend it (the signature is the agreed contract).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from index.store import Alert, Document, Feedback, Store

STATUS = {"confirm": "confirmed", "dismiss": "dismissed"}


def record_feedback(store: Store, doc_id: int, verdict: Literal["confirm", "dismiss"],
                    pattern_id: str | None = None, note: str = "") -> Feedback:
    """Store the verdict; alerts of the document (of that pattern, when given) take its status."""
    if verdict not in STATUS:
        raise ValueError(f"verdict must be one of {sorted(STATUS)}, not {verdict!r}")
    with store.session() as session:
        if session.get(Document, doc_id) is None:
            raise LookupError(f"no document {doc_id}")
        feedback = Feedback(doc_id=doc_id, pattern_id=pattern_id, verdict=verdict, note=note)
        session.add(feedback)
        query = select(Alert).where(Alert.doc_id == doc_id)
        if pattern_id:
            query = query.where(Alert.pattern_id == pattern_id)
        for alert in session.scalars(query):
            alert.status = STATUS[verdict]
            alert.history = [*(alert.history or []), {"event": STATUS[verdict], "note": note,
                                                     "at": datetime.now(UTC).isoformat()}]
        session.flush()
        return feedback
