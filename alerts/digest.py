"""The digest of one subscription: alert groups it has not received, by pattern, best first,
with crawl health and a summary line, as mail-client HTML (tables, inline CSS) and plain text.

Jinja2 autoescapes everything that came from a crawled page (titles, sentences, URLs), so a
hostile page cannot run script in a mail client. Links are only emitted for http(s) URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Exists

from alerts.health import SourceHealth, crawl_health
from alerts.saved import SearchNews
from alerts.views import AlertView, deliverable, heads_query, load_views, matches
from ground.config import Subscription
from ground.sources import Source
from index.store import Alert, AlertSend

__all__ = ["Digest", "build_message", "collect", "render", "write_eml"]

# How long a scheduled run may take before its missing record counts (scheduler.crawl_timeout_seconds).
HEALTH_GRACE = timedelta(hours=4)
_env = Environment(loader=PackageLoader("alerts", "templates"),
                   autoescape=select_autoescape(["html", "html.j2", "xml", "atom.j2"], default=False),
                   trim_blocks=True, lstrip_blocks=True)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class Digest:
    subscription: str = "default"
    timezone: str = "UTC"
    groups: dict[str, list[AlertView]] = field(default_factory=dict)
    pattern_titles: dict[str, str] = field(default_factory=dict)
    health: list[SourceHealth] = field(default_factory=list)
    updated: set[int] = field(default_factory=set)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    searches: list[SearchNews] = field(default_factory=list)   # saved searches' new results

    @property
    def items(self) -> list[AlertView]:
        return [item for group in self.groups.values() for item in group]

    @property
    def alerts(self) -> list[tuple[int, int]]:
        """(head id, revision) of every item: what a successful send records."""
        return [(item.id, item.revision) for item in self.items]

    @property
    def hits(self) -> list[tuple[int, int]]:
        """(saved search id, document id) of every new search result: what a successful send records."""
        return [hit for news in self.searches for hit in news.hits]

    @property
    def empty(self) -> bool:
        return not self.items and not self.searches

    @property
    def local_created(self) -> datetime:
        return self.created.astimezone(ZoneInfo(self.timezone))

    @property
    def problems(self) -> list[SourceHealth]:
        return [h for h in self.health if not h.ok]

    @property
    def summary(self) -> str:
        items = self.items
        updated = sum(1 for item in items if item.id in self.updated)
        sources = {s for item in items for s in item.sources}
        parts = [f"{_plural(len(items) - updated, 'new alert')}"]
        if updated:
            parts.append(f"{updated} updated")
        parts.append(f"in {_plural(len(self.groups), 'pattern')} from {_plural(len(sources), 'source')}")
        if self.searches:
            parts.append(f"· {_plural(len(self.hits), 'new result')} of {_plural(len(self.searches), 'saved search')}")
        if self.problems:
            parts.append(f"· crawl: {_plural(len(self.problems), 'source')} need attention")
        return " ".join(parts)


def _sent_clause(name: str, channel: str) -> Exists:
    return exists().where(and_(AlertSend.alert_id == Alert.id, AlertSend.subscription == name,
                               AlertSend.channel == channel, AlertSend.revision >= Alert.revision))


def _ordered(groups: dict[str, list[AlertView]], titles: dict[str, str]) -> dict[str, list[AlertView]]:
    """Patterns with an alert about a listed party first, then in the library's order."""
    order = list(titles)
    return dict(sorted(groups.items(), key=lambda kv: (not any(v.listed for v in kv[1]),
                                                       order.index(kv[0]) if kv[0] in order else len(order))))


def collect(session: Session, sub: Subscription, titles: dict[str, str], channel: str, sources: Sequence[Source],
            public_base_url: str | None = None, now: datetime | None = None,
            health_grace: timedelta = HEALTH_GRACE, searches: Sequence[SearchNews] = ()) -> Digest:
    """Groups matching ``sub`` not yet sent to it on ``channel`` (or updated since): those about a
    listed party first, then by score; none that an analyst dismissed or snoozed
    (:func:`alerts.views.deliverable`). ``searches``: its saved searches' new results
    (:func:`alerts.saved.new_results`), shown after the alerts."""
    digest = Digest(subscription=sub.name, timezone=sub.timezone, pattern_titles=titles,
                    created=now or datetime.now(UTC), searches=list(searches))
    query = heads_query().where(~_sent_clause(sub.name, channel), deliverable(digest.created))
    views = load_views(session, query, public_base_url)
    for view in views:
        group = digest.groups.setdefault(view.pattern_id, [])
        if matches(view, sub) and len(group) < sub.max_items_per_pattern:
            group.append(view)
    digest.groups = _ordered({k: v for k, v in digest.groups.items() if v}, titles)
    ids = [item.id for item in digest.items]
    digest.updated = set(session.scalars(select(AlertSend.alert_id).where(
        AlertSend.alert_id.in_(ids), AlertSend.subscription == sub.name, AlertSend.channel == channel)))
    watched = [source for source in sources if not sub.sources or source.id in sub.sources]
    digest.health = crawl_health(session, watched, digest.created, health_grace)
    return digest


def render(digest: Digest) -> tuple[str, str]:
    """(html, text) of the digest."""
    context = {"digest": digest, "titles": digest.pattern_titles}
    return _env.get_template("digest.html.j2").render(context), _env.get_template("digest.txt.j2").render(context)


def build_message(digest: Digest, sender: str, recipients: list[str], subject_prefix: str) -> EmailMessage:
    html_body, text_body = render(digest)
    message = EmailMessage()
    count = len(digest.items)
    searched = f", {_plural(len(digest.hits), 'search result')}" if digest.hits else ""
    message["Subject"] = f"{subject_prefix} {_plural(count, 'new alert')}{searched} ({digest.local_created:%Y-%m-%d})"
    message["From"] = sender
    message["To"] = ", ".join(recipients) or sender
    message["Date"] = formatdate(digest.created.timestamp(), localtime=False)
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
