"""The daily digest: unsent alerts grouped by pattern, best first, as HTML and plain text.

Jinja2 autoescapes everything that came from a crawled page (titles, sentences, URLs), so a
hostile page cannot run script in a mail client. Links are only emitted for http(s) URLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select

from index.store import Alert, Document, Store

_env = Environment(loader=PackageLoader("alerts", "templates"),
                   autoescape=select_autoescape(["html", "html.j2"], default=False),
                   trim_blocks=True, lstrip_blocks=True)


def safe_link(url: str) -> str | None:
    """Only http(s) URLs become links; javascript:, data: and the like are shown as text."""
    return url if urlsplit(url).scheme in ("http", "https") else None


@dataclass
class DigestItem:
    alert_id: int
    pattern_id: str
    score: float
    title: str
    url: str
    link: str | None
    date: str | None
    sentence: str
    party: str
    entities: list[str]


@dataclass
class Digest:
    groups: dict[str, list[DigestItem]] = field(default_factory=dict)
    pattern_titles: dict[str, str] = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def items(self) -> list[DigestItem]:
        return [item for group in self.groups.values() for item in group]

    @property
    def alert_ids(self) -> list[int]:
        return [item.alert_id for item in self.items]


def _item(alert: Alert, doc: Document) -> DigestItem:
    fields = doc.fields or {}
    party = fields.get("buyer") or next((e["name"] for e in doc.entities or [] if e.get("type") == "sanctioned-vendor"),
                                        "")
    return DigestItem(alert.id, alert.pattern_id, alert.score, doc.title or doc.url, doc.url, safe_link(doc.url),
                      doc.published, alert.sentence, party,
                      [e["name"] for e in (doc.entities or [])][:8])


def collect(store: Store, pattern_titles: dict[str, str], per_pattern: int = 50) -> Digest:
    """Alerts not yet sent, grouped by pattern in library order, best score first."""
    digest = Digest(pattern_titles=pattern_titles)
    with store.session() as session:
        rows = session.execute(select(Alert, Document).join(Document, Alert.doc_id == Document.id)
                               .where(Alert.sent_at.is_(None)).order_by(Alert.score.desc())).all()
    for alert, doc in rows:
        group = digest.groups.setdefault(alert.pattern_id, [])
        if len(group) < per_pattern:
            group.append(_item(alert, doc))
    order = list(pattern_titles)
    digest.groups = dict(sorted(digest.groups.items(),
                                key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    return digest


def render(digest: Digest) -> tuple[str, str]:
    """(html, text) of the digest."""
    context = {"digest": digest, "titles": digest.pattern_titles}
    return _env.get_template("digest.html.j2").render(context), _env.get_template("digest.txt.j2").render(context)


def build_message(digest: Digest, sender: str, recipients: list[str], subject_prefix: str) -> EmailMessage:
    html_body, text_body = render(digest)
    message = EmailMessage()
    count = len(digest.items)
    message["Subject"] = f"{subject_prefix} {count} new alert{'s' if count != 1 else ''} ({digest.created:%Y-%m-%d})"
    message["From"] = sender
    message["To"] = ", ".join(recipients) or sender
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="loophole-watch.local")
    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    return message


def write_eml(message: EmailMessage, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"digest-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.eml"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(message))
    tmp.replace(path)
    return path


def mark_sent(store: Store, alert_ids: list[int], channel: str) -> None:
    now = datetime.now(UTC)
    with store.session() as session:
        for alert in session.scalars(select(Alert).where(Alert.id.in_(alert_ids))):
            alert.sent_at = now
            alert.status = "sent"
            alert.history = [*alert.history, {"event": "sent", "channel": channel, "at": now.isoformat()}]
