"""Sending a digest so that a crash at any moment loses no alert: spool, claim, send, mark.

1. The rendered message is written to ``outbox/pending/`` (atomically) with its Message-ID.
2. A ``deliveries`` row (status ``sending``) records the message and the alert ids it carries.
3. The message is delivered (SMTP, or an .eml file).
4. The alerts are marked sent, then the delivery row.

Recovery, run before every new digest: a delivery still ``sending`` was interrupted. If its
alerts are already marked sent, only the bookkeeping is finished. Otherwise the *same spooled
message* (same Message-ID) is delivered again. A spool file without a row is a crash before
the claim: it is deleted and its alerts, still unsent, go into the next digest.

The choice is **at-least-once**. SMTP cannot make delivery and our commit one atomic step:
a process killed after the server's final "250 OK" and before step 4 cannot know the message
arrived. Losing a night's alerts is worse than a duplicate, so such a message is re-sent, and
the duplicate carries the original Message-ID (mail systems and clients de-duplicate on it).
An alert never appears in two *different* digests. Assumes one digest sender at a time (the
scheduler's job, or a person running ``loophole digest --send``).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from alerts.delivery import deliver
from alerts.digest import mark_sent
from index.store import Alert, Delivery, Store
from loophole.config import Settings

log = logging.getLogger(__name__)


def spool_dir(settings: Settings) -> Path:
    return settings.outbox_dir / "pending"


def _spool(settings: Settings, message: EmailMessage) -> Path:
    folder = spool_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    token = str(message["Message-ID"]).strip("<>").split("@")[0]
    path = folder / f"{token}.eml"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(bytes(message))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def _claim(store: Store, message: EmailMessage, alert_ids: list[int], path: Path, out_dir: Path | None) -> int:
    with store.session() as session:
        row = Delivery(message_id=str(message["Message-ID"]), alert_ids=list(alert_ids), spool_path=str(path),
                       out_dir=str(out_dir) if out_dir else None)
        session.add(row)
        session.flush()
        return row.id


def _complete(store: Store, delivery_id: int, channel: str) -> None:
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        unsent = list(session.scalars(select(Alert.id).where(Alert.id.in_(row.alert_ids), Alert.sent_at.is_(None))))
    mark_sent(store, unsent, channel)  # alerts a crash left marked keep their first record
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.status, row.channel, row.sent_at = "sent", channel, datetime.now(UTC)
    Path(row.spool_path).unlink(missing_ok=True)


def send_with_outbox(settings: Settings, store: Store, message: EmailMessage, alert_ids: list[int],
                     out_dir: Path | None = None) -> str:
    """Spool, claim, deliver, mark. A DeliveryError leaves the claim for the next run's recovery."""
    path = _spool(settings, message)
    delivery_id = _claim(store, message, alert_ids, path, out_dir)
    where = deliver(message, settings, out_dir)
    _complete(store, delivery_id, where)
    return where


def _all_sent(store: Store, alert_ids: list[int]) -> bool:
    with store.session() as session:
        unsent = session.scalars(select(Alert.id).where(Alert.id.in_(alert_ids), Alert.sent_at.is_(None))).first()
    return unsent is None


def recover(settings: Settings, store: Store) -> int:
    """Finish every interrupted delivery; returns how many messages were re-sent."""
    with store.session() as session:
        pending = list(session.scalars(select(Delivery).where(Delivery.status == "sending").order_by(Delivery.id)))
    resent = 0
    for row in pending:
        if _all_sent(store, row.alert_ids):
            _complete(store, row.id, row.channel or "recovered")
            continue
        message = message_from_bytes(Path(row.spool_path).read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        log.warning("re-sending interrupted digest %s (%d alerts)", row.message_id, len(row.alert_ids))
        with store.session() as session:
            claimed = session.get(Delivery, row.id)
            assert claimed is not None
            claimed.attempts += 1
        where = deliver(message, settings, Path(row.out_dir) if row.out_dir else None)
        _complete(store, row.id, where)
        resent += 1
    _drop_orphans(settings, store)
    return resent


def _drop_orphans(settings: Settings, store: Store) -> None:
    """Spool files no delivery row refers to: crashes before the claim; their alerts are still unsent."""
    folder = spool_dir(settings)
    if not folder.exists():
        return
    with store.session() as session:
        known = set(session.scalars(select(Delivery.spool_path).where(Delivery.status == "sending")))
    for path in folder.iterdir():
        if str(path) not in known:
            path.unlink(missing_ok=True)
