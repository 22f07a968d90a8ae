"""Analysts' verdicts: recorded once, then used twice.

A verdict (confirm or dismiss, for one pattern or for every pattern flagged on the page) is
stored as a Feedback row and in the alert's history. It then (1) joins the pattern library at
the next start as an example or counter-example, through the decisive sentence it was about,
so a later page like a dismissed one loses to it; and (2) counts as a labelled sample at the
next ``loophole calibrate``, moving that pattern's threshold. No code or YAML is edited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from index.detect import LearnedExamples
from index.store import Alert, Detection, Document, Feedback, Store

Verdict = Literal["confirm", "dismiss"]
_STATUS = {"confirm": "confirmed", "dismiss": "dismissed"}


class FeedbackError(LookupError):
    """A verdict that cannot be recorded (unknown document or pattern)."""


def record_feedback(store: Store, doc_id: int, verdict: Verdict, pattern_id: str | None = None,
                    note: str = "") -> Feedback:
    """Store the verdict and move the matching alerts to confirmed/dismissed, with history."""
    if verdict not in _STATUS:
        raise FeedbackError(f"verdict must be confirm or dismiss, not {verdict!r}")
    with store.session() as session:
        if session.get(Document, doc_id) is None:
            raise FeedbackError(f"no document with id {doc_id}")
        known = set(session.scalars(select(Detection.pattern_id).where(Detection.doc_id == doc_id)))
        if pattern_id is not None and known and pattern_id not in known:
            raise FeedbackError(f"document {doc_id} was not scored for pattern {pattern_id!r}; "
                                f"known: {', '.join(sorted(known))}")
        row = Feedback(doc_id=doc_id, pattern_id=pattern_id, verdict=verdict, note=note)
        session.add(row)
        query = select(Alert).where(Alert.doc_id == doc_id)
        if pattern_id is not None:
            query = query.where(Alert.pattern_id == pattern_id)
        for alert in session.scalars(query):
            alert.status = _STATUS[verdict]
            alert.history = [*alert.history, {"event": verdict, "at": datetime.now(UTC).isoformat(), "note": note}]
        session.flush()
        return row


def verdict_labels(store: Store) -> dict[tuple[int, str], bool]:
    """(document, pattern) -> True for confirmed, False for dismissed; the latest verdict wins.

    A verdict without a pattern applies to the patterns that were flagged on that page (for a
    dismissal) or, for a confirmation, also to none other: confirming "this page is evidence"
    does not say of what, beyond what was flagged.
    """
    labels: dict[tuple[int, str], bool] = {}
    with store.session() as session:
        flagged: dict[int, set[str]] = {}
        for doc_id, pid in session.execute(select(Detection.doc_id, Detection.pattern_id).where(Detection.flagged)):
            flagged.setdefault(doc_id, set()).add(pid)
        for row in session.scalars(select(Feedback).order_by(Feedback.created_at, Feedback.id)):
            targets = [row.pattern_id] if row.pattern_id else sorted(flagged.get(row.doc_id, set()))
            for pid in targets:
                labels[(row.doc_id, pid)] = row.verdict == "confirm"
    return labels


def learned_examples(store: Store) -> LearnedExamples:
    """The decisive units of judged pages, as extra examples and (vetoing) counter-examples."""
    labels = verdict_labels(store)
    learned = LearnedExamples()
    if not labels:
        return learned
    with store.session() as session:
        for (doc_id, pid), confirmed in labels.items():
            detection = session.scalar(select(Detection).where(Detection.doc_id == doc_id,
                                                               Detection.pattern_id == pid))
            if detection is None or not detection.sentence:
                continue
            target = learned.examples if confirmed else learned.counter_examples
            # Confirming adds the decisive unit; dismissing vetoes every strong unit of the page.
            evidence = (detection.reasons or {}).get("evidence") or [detection.sentence]
            units = [detection.sentence] if confirmed else evidence
            target.setdefault(pid, []).extend(units)
    return learned
