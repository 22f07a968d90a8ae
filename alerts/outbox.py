"""Sending a digest so that a crash at any moment loses no alert: spool, claim, send, mark.

1. The rendered message is written to ``outbox/pending/`` (atomically) with its Message-ID.
2. A ``deliveries`` row (status ``sending``) records the message, the subscription and the
   (alert group, revision) pairs it carries.
3. The message is delivered (SMTP, or an .eml file).
4. The sends are recorded for that subscription (alerts/jobs.py semantics), then the delivery row.

Recovery, run before every new digest: a delivery still ``sending`` was interrupted. If its
sends are already recorded, only the bookkeeping is finished. Otherwise the *same spooled
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

from alerts.channels import send_email
from alerts.delivery import DeliveryError
from alerts.digest import write_eml
from alerts.saved import record_hits
from ground.config import Settings
from index.store import Alert, AlertSend, Delivery, Store

log = logging.getLogger(__name__)
CHANNEL = "email"


def spool_dir(settings: Settings) -> Path:
    return settings.outbox_dir / "pending"


def deliver(message: EmailMessage, settings: Settings, out_dir: Path | None) -> str:
    """SMTP (with retries) when configured and no folder was asked for; else an .eml file."""
    if out_dir is None and settings.smtp.host:
        return send_email(message, settings)
    return f"file:{write_eml(message, out_dir or settings.outbox_dir)}"


def record_sends(store: Store, sends: list[tuple[int, int]], sub: str, channel: str, target: str,
                 now: datetime) -> None:
    """Mark groups delivered to one subscription's channel; idempotent."""
    with store.session() as session:
        for alert_id, revision in sends:
            if session.scalar(select(AlertSend.id).where(
                    AlertSend.alert_id == alert_id, AlertSend.subscription == sub, AlertSend.channel == channel,
                    AlertSend.revision == revision)) is not None:
                continue
            session.add(AlertSend(alert_id=alert_id, subscription=sub, channel=channel, revision=revision,
                                  target=target, sent_at=now))
            alert = session.get(Alert, alert_id)
            if alert is not None:
                alert.sent_at = alert.sent_at or now
                if alert.status == "new":   # a verdict (confirmed, dismissed) outlives any send
                    alert.status = "sent"


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


def _claim(store: Store, message: EmailMessage, sub: str, sends: list[tuple[int, int]], path: Path,
           out_dir: Path | None, hits: list[tuple[int, int]]) -> int:
    with store.session() as session:
        row = Delivery(message_id=str(message["Message-ID"]), subscription=sub,
                       alert_ids=[list(pair) for pair in sends], search_hits=[list(pair) for pair in hits],
                       spool_path=str(path), out_dir=str(out_dir) if out_dir else None)
        session.add(row)
        session.flush()
        return row.id


def _complete(store: Store, delivery_id: int, target: str) -> None:
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        sends = [(int(a), int(r)) for a, r in row.alert_ids]
        hits = [(int(s), int(d)) for s, d in row.search_hits or []]
        sub = row.subscription
    record_sends(store, sends, sub, CHANNEL, target, datetime.now(UTC))  # idempotent after a crash
    record_hits(store, hits, CHANNEL)
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.status, row.channel, row.sent_at = "sent", target, datetime.now(UTC)
    Path(row.spool_path).unlink(missing_ok=True)


def send_with_outbox(settings: Settings, store: Store, message: EmailMessage, sub: str,
                     sends: list[tuple[int, int]], out_dir: Path | None = None,
                     hits: list[tuple[int, int]] | None = None) -> str:
    """Spool, claim, deliver, record (alert groups, and saved searches' results: ``hits``). A crash
    leaves the claim for recover(); a refusal releases it."""
    path = _spool(settings, message)
    delivery_id = _claim(store, message, sub, sends, path, out_dir, hits or [])
    try:
        target = deliver(message, settings, out_dir)
    except DeliveryError:
        _release(store, delivery_id)   # refused, not interrupted: the alerts go in the next digest
        raise
    _complete(store, delivery_id, target)
    return target


def _release(store: Store, delivery_id: int) -> None:
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        Path(row.spool_path).unlink(missing_ok=True)
        session.delete(row)


def _all_recorded(store: Store, row: Delivery) -> bool:
    with store.session() as session:
        for alert_id, revision in row.alert_ids:
            if session.scalar(select(AlertSend.id).where(
                    AlertSend.alert_id == alert_id, AlertSend.subscription == row.subscription,
                    AlertSend.channel == CHANNEL, AlertSend.revision == revision)) is None:
                return False
    return True


def recover(settings: Settings, store: Store) -> int:
    """Finish every interrupted delivery; returns how many messages were re-sent."""
    with store.session() as session:
        pending = list(session.scalars(select(Delivery).where(Delivery.status == "sending").order_by(Delivery.id)))
    resent = 0
    for row in pending:
        if _all_recorded(store, row):
            _complete(store, row.id, row.channel or "recovered")
            continue
        message = message_from_bytes(Path(row.spool_path).read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        log.warning("re-sending interrupted digest %s (%d alert groups)", row.message_id, len(row.alert_ids))
        with store.session() as session:
            claimed = session.get(Delivery, row.id)
            assert claimed is not None
            claimed.attempts += 1
        target = deliver(message, settings, Path(row.out_dir) if row.out_dir else None)
        _complete(store, row.id, target)
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
