"""Delivery channels beyond plain SMTP: email with retries, Apprise URLs, and an Atom feed file.

Each channel reports success or raises :class:`DeliveryError`; the caller records a send only
after success, so a failed delivery leaves its alerts pending for the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import apprise
from feedgen.feed import FeedGenerator
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from alerts.delivery import DeliveryError, send_smtp
from alerts.views import AlertView
from ground.config import Settings

log = logging.getLogger(__name__)
# Generic webhooks get machine-readable alert records; chat services get the readable digest.
MACHINE_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}


def send_email(message: EmailMessage, settings: Settings) -> str:
    """SMTP with retries and exponential back-off; raises DeliveryError after the last attempt."""
    smtp = settings.smtp
    retrying = Retrying(stop=stop_after_attempt(smtp.retries + 1), reraise=False,
                        wait=wait_exponential(multiplier=smtp.retry_wait_seconds, max=300),
                        retry=retry_if_exception_type(DeliveryError))
    try:
        return retrying(send_smtp, message, settings)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise DeliveryError(f"{last} (after {smtp.retries + 1} attempts)") from last


def apprise_channel(url: str) -> str:
    """A stable channel name that does not reveal the URL's token."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "apprise"
    return f"apprise:{scheme}:{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def is_machine(url: str) -> bool:
    return url.split("://", 1)[0].lower() in MACHINE_SCHEMES


def send_apprise(url: str, title: str, body: str, timeout: float = 30.0) -> str:
    """One Apprise URL; raises DeliveryError when the URL is invalid or the service refused."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError(f"{apprise_channel(url)}: not a usable Apprise URL")
    if not notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT, timeout=timeout):
        raise DeliveryError(f"{apprise_channel(url)}: delivery failed")
    return apprise_channel(url)


def machine_body(views: list[AlertView], records: list[dict[str, Any]]) -> str:
    return json.dumps({"alerts": records, "count": len(views)}, ensure_ascii=False)


def write_atom(path: Path, views: list[AlertView], feed_title: str, feed_id: str) -> Path:
    """The subscription's latest alert groups as an Atom file (written atomically)."""
    feed = FeedGenerator()
    feed.id(feed_id)
    feed.title(feed_title)
    feed.link(href=feed_id, rel="self")
    feed.updated(max((v.updated_at or v.created_at for v in views), default=datetime.now(UTC)))
    for view in sorted(views, key=lambda v: v.updated_at or v.created_at):
        entry = feed.add_entry()
        entry.id(f"{feed_id}:alert:{view.id}")
        entry.title(f"[{view.pattern_id} {view.score:.2f}] {view.title}")
        if view.link:
            entry.link(href=view.link)
        entry.updated(view.updated_at or view.created_at)
        entry.published(view.created_at)
        entry.summary(f"{view.sentence}\n\n{' | '.join(filter(None, [view.buyer, view.vendor, view.amount]))}\n"
                      f"sources: {', '.join(view.sources)}; stages: {', '.join(view.stages)}")
        entry.category(term=view.pattern_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    feed.atom_file(str(tmp), pretty=True)
    tmp.replace(path)
    return path
