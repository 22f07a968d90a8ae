"""A web data directory for the web tests: the dev corpus, one hostile page, three users."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ground.config import Settings
from index.store import Alert, Document
from loophole.pipeline import Monitor, RawPage
from tests.conftest import DEV_CORPUS
from tests.corpus_home import copy_of, ingested_corpus, settings_for
from web.auth import add_user

HOSTILE_URL = "javascript:alert('url')//evil.example/海康威视"
HOSTILE_TITLE = "<script>alert('title')</script>海康威视 Azure 视频云 <img src=x onerror=alert('img')>"
HOSTILE_BODY = """<!doctype html><html><head><meta charset="utf-8">
<title>&lt;script&gt;alert('title')&lt;/script&gt;海康威视 Azure 视频云 &lt;img src=x onerror=alert('img')&gt;</title>
<script>alert('inline')</script></head>
<body onload="alert('onload')"><article>
<h1>&lt;script&gt;alert('title')&lt;/script&gt;海康威视 Azure 视频云 &lt;img src=x onerror=alert('img')&gt;</h1>
<p>海康威视视频云平台已上架微软Azure云市场，支持境外区域部署。&lt;script&gt;alert('body')&lt;/script&gt;
<a href="javascript:alert('link')" onclick="alert('click')">点击这里</a></p>
<p>Hikvision HikCentral video management platform deployed on Microsoft Azure for customers in China.
&lt;b onmouseover=alert('hover')&gt;bold&lt;/b&gt; and a link javascript:alert('text')</p>
<p>平台支持人脸识别、视频结构化分析与云端存储，可通过AWS或Azure全球区域交付给国内客户使用。</p>
</article></body></html>"""


@dataclass
class WebHome:
    home: Path
    settings: Settings
    tokens: dict[str, str]
    hostile_doc: int
    hostile_alert: int


def build_web_home(target: Path) -> WebHome:
    """A private copy of the ingested dev corpus with a hostile page (and an alert on it) and users."""
    home = copy_of(ingested_corpus(DEV_CORPUS), target)
    settings = settings_for(home)
    monitor = Monitor(settings)
    try:
        result = monitor.ingest(RawPage(url=HOSTILE_URL, body=HOSTILE_BODY.encode("utf-8"), source="hostile"))
        assert result.doc_id is not None, result
        doc_id = result.doc_id
        with monitor.store.session() as session:
            alert = session.query(Alert).filter_by(doc_id=doc_id).first()
            if alert is None:
                alert = Alert(doc_id=doc_id, pattern_id="surveillance-vendor-on-us-cloud", score=0.9,
                              sentence=session.get(Document, doc_id).title, history=[])  # type: ignore[union-attr]
                session.add(alert)
                session.flush()
            alert_id = alert.id
        tokens = {role: add_user(monitor.store, f"{role}-user", role) for role in ("viewer", "analyst", "admin")}
    finally:
        monitor.close()
    return WebHome(home, settings, tokens, doc_id, alert_id)
