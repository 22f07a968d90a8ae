"""Shared parts for the alert tests: a real SMTP server and a webhook receiver on loopback,
and documents with alerts written straight into the store (no embedding model needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from index.store import Alert, CrawlRun, Document, Store
from loophole.webserver import LoopbackHTTPServer, serving
from tests.ports import free_port

SENTENCE = "采购4张NVIDIA A100 GPU卡用于人脸识别和车辆识别分析平台建设。"
TEXT = ("沅州市公安局视频智能分析平台采购项目。项目编号：YZGA-2026-018。采购人：沅州市公安局。"
        "预算金额：860.00万元。" + SENTENCE + "供应商资格要求：具有独立承担民事责任的能力。开标时间：2026年11月30日。"
        "本项目通过云服务租用算力，部署于境外数据中心，服务期三年，含运维与升级。")


class Inbox:
    """An aiosmtpd handler that keeps messages, or refuses them while ``failing`` is set."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.failing = False
        self.attempts = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.failing:
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()  # aiosmtpd's readiness check needs a real port number, not 0
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[tuple[list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    with serving(LoopbackHTTPServer(("127.0.0.1", 0), Handler), "webhook") as server:
        yield received, server.server_address[1]


def add_alert(store: Store, url: str, *, source: str = "ccgp", title: str = "沅州市公安局视频智能分析平台采购项目公开招标公告",
              text: str = TEXT, fields: dict[str, Any] | None = None, pattern: str = "police-us-tech-procurement",
              score: float = 0.8, sentence: str = SENTENCE, entities: list[dict[str, str]] | None = None,
              published: str = "2026-11-01", kind: str = "procurement") -> int:
    """A stored document and its alert, as the pipeline would leave them."""
    fields = {"project_no": "YZGA-2026-018", "buyer": "沅州市公安局", "notice_type": "tender",
              "amounts": [{"label": "预算金额", "amount": 8600000.0, "currency": "CNY"}]} if fields is None else fields
    entities = [{"id": "nvidia", "name": "NVIDIA", "type": "us-brand-hardware", "matched": "NVIDIA"}] \
        if entities is None else entities
    with store.session() as session:
        doc = Document(url=url, source=source, sha256=f"{abs(hash(url)):064d}"[:64], title=title, text=text,
                       lang="zh", kind=kind, published=published, fields=fields, entities=entities)
        session.add(doc)
        session.flush()
        alert = Alert(doc_id=doc.id, pattern_id=pattern, score=score, sentence=sentence,
                      history=[{"event": "created", "at": datetime.now(UTC).isoformat()}])
        session.add(alert)
        session.flush()
        return alert.id


def add_crawl_run(store: Store, source: str, health: str = "ok", reason: str = "",
                  stats: dict[str, Any] | None = None) -> None:
    with store.session() as session:
        session.add(CrawlRun(source=source, finished_at=datetime.now(UTC), health=health, reason=reason,
                             stats=stats if stats is not None else {"ingest/stored": 3, "ingest/unchanged": 5}))


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())
