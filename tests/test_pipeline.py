"""The chain from bytes to alerts: idempotence, alerts raised once, escaping in the email."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ground.config import Settings, load_settings
from index.store import Alert, Chunk, Document
from loophole.notify import deliver_digest
from loophole.pipeline import Monitor, RawPage

DEMO = Path(__file__).resolve().parent.parent / "seeds" / "demo"

POSITIVE = """<html><head><meta charset="gb2312"><title>{title}</title></head>
<body><h1>{title}</h1><div class="content">
<p>项目编号：YZGA-2026-018</p><p>采购人：沅州市公安局</p><p>预算金额：860.00万元（人民币）</p>
<p>采购需求：</p><table>
<tr><td>1</td><td>视频结构化分析服务器</td><td>配置2颗Intel至强金牌6430处理器，4张NVIDIA A2推理GPU卡，用于人脸与车辆识别</td><td>6台</td></tr>
<tr><td>2</td><td>存储扩容</td><td>不少于500TB</td><td>1套</td></tr></table>
<p>供应商资格要求：具有独立承担民事责任的能力。开标时间：2026年11月30日。</p></div></body></html>"""

TITLE = "沅州市公安局视频智能分析平台采购项目公开招标公告"


def positive_page(title: str = TITLE) -> bytes:
    return POSITIVE.format(title=title).encode("gb18030")


def ingest(settings: Settings, body: bytes, url: str = "http://127.0.0.1/cggg/zygg/gkzb/202611/t20261101_1.htm"):
    monitor = Monitor(settings)
    try:
        return monitor.ingest(RawPage(url=url, body=body, source="test"))
    finally:
        monitor.close()


def test_police_page_with_us_chips_raises_an_alert(settings: Settings) -> None:
    result = ingest(settings, positive_page())
    assert result.status == "stored"
    assert "police-us-tech-procurement" in result.flagged


def test_unchanged_page_does_no_further_work(settings: Settings) -> None:
    first = ingest(settings, positive_page())
    monitor = Monitor(settings)
    chunk_ids = [c.id for c in monitor.store.chunks_for(first.doc_id or 0)]
    second = monitor.ingest(RawPage(url="http://127.0.0.1/cggg/zygg/gkzb/202611/t20261101_1.htm",
                                    body=positive_page(), source="test"))
    assert second.status == "unchanged" and second.doc_id == first.doc_id
    assert [c.id for c in monitor.store.chunks_for(first.doc_id or 0)] == chunk_ids
    monitor.close()


def test_alert_raised_once_across_runs(settings: Settings) -> None:
    ingest(settings, positive_page())
    ingest(settings, positive_page().replace(b"860.00", b"880.00"))  # changed, re-scored
    monitor = Monitor(settings)
    with monitor.store.session() as session:
        alerts = session.scalars(select(Alert).where(Alert.pattern_id == "police-us-tech-procurement")).all()
        chunks = session.query(Chunk).count()
    assert len(alerts) == 1
    assert len(monitor.vectors) == chunks     # old chunks left the index when the page changed
    monitor.close()


def test_index_survives_reload(settings: Settings) -> None:
    ingest(settings, positive_page())
    monitor = Monitor(settings)
    with monitor.store.session() as session:
        assert len(monitor.vectors) == session.query(Chunk).count() > 0
    monitor.close()


def _html_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no HTML part")


def test_html_in_scraped_title_arrives_escaped(settings: Settings, tmp_path: Path) -> None:
    # Entity-encoded in the page source, so the extracted title text really is markup.
    hostile = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" + TITLE
    ingest(settings, positive_page(hostile))
    assert deliver_digest(settings, tmp_path / "out").count("email") >= 1
    eml = next((tmp_path / "out").glob("*.eml"))
    html = _html_part(message_from_bytes(eml.read_bytes()))
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Delivered alerts are not sent again.
    assert deliver_digest(settings, tmp_path / "out2").count("email") == 0


def test_binary_page_is_rejected_and_not_stored(settings: Settings) -> None:
    result = ingest(settings, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    assert result.status == "rejected" and "binary" in result.reason


def test_changed_page_indexes_only_new_passages(settings: Settings) -> None:
    first = ingest(settings, positive_page())
    monitor = Monitor(settings)
    before = {c.text: c.id for c in monitor.store.chunks_for(first.doc_id or 0)}
    changed = positive_page().replace("不少于500TB".encode("gb18030"), "不少于800TB".encode("gb18030"))
    result = monitor.ingest(RawPage(url="http://127.0.0.1/cggg/zygg/gkzb/202611/t20261101_1.htm", body=changed))
    after = {c.text: c.id for c in monitor.store.chunks_for(first.doc_id or 0)}
    assert monitor.indexed == len(set(after) - set(before)) >= 1  # only the changed row is indexed
    assert all(after[text] == before[text] for text in set(after) & set(before))  # kept rows keep their ids
    assert len(monitor.vectors) == len(after) and "police-us-tech-procurement" in result.flagged
    # A row whose vector never reached the index (an ingest that failed halfway) gets one.
    kept = next(iter(set(after) & set(before)))
    monitor.vectors.remove(np.array([after[kept]]))
    monitor.ingest(RawPage(url="http://127.0.0.1/cggg/zygg/gkzb/202611/t20261101_1.htm", body=positive_page()))
    now = [c.id for c in monitor.store.chunks_for(first.doc_id or 0)]
    assert monitor.vectors.missing(now) == [] and len(monitor.vectors) == len(now)
    monitor.close()


def _alerts_and_chunks(monitor: Monitor) -> tuple[set[tuple[str, str]], list[str]]:
    with monitor.store.session() as session:
        alerts = {(url, pattern) for url, pattern in session.execute(
            select(Document.url, Alert.pattern_id).join(Alert, Alert.doc_id == Document.id))}
        chunks = list(session.scalars(select(Chunk.text).order_by(Chunk.doc_id, Chunk.seq)))
    return alerts, chunks


def test_worker_processes_give_the_same_documents_and_alerts(home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Extraction and embedding in two spawned workers: same chunks, same alerts, same order of
    results as in one process, and a broken page still comes back as rejected."""
    files = sorted(DEMO.rglob("*.htm"))[:10]
    raws = [RawPage(url=f"http://127.0.0.1/{i}.htm", body=f.read_bytes()) for i, f in enumerate(files)]
    raws.append(RawPage(url="http://127.0.0.1/binary.htm", body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10))
    outcomes = []
    for workers in (0, 2):
        monkeypatch.setenv("LOOPHOLE_HOME", str(tmp_path / f"home{workers}"))
        monitor = Monitor(load_settings())
        pool = monitor.worker_pool(workers)
        results = list(monitor.ingest_all(raws, pool))
        if pool is not None:
            pool.close()
        assert [r.url for r in results] == [r.url for r in raws]
        assert results[-1].status == "rejected" and "binary" in results[-1].reason
        outcomes.append((_alerts_and_chunks(monitor), len(monitor.vectors)))
        monitor.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0], "the demo pages raise alerts"
