"""The chain from bytes to alerts: idempotence, alerts raised once, escaping in the email."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

from sqlalchemy import select

from index.store import Alert, Chunk
from loophole.config import Settings
from loophole.notify import deliver_digest
from loophole.pipeline import Monitor, RawPage

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
    where, count = deliver_digest(settings, tmp_path / "out")
    assert count >= 1
    eml = next((tmp_path / "out").glob("*.eml"))
    html = _html_part(message_from_bytes(eml.read_bytes()))
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Delivered alerts are not sent again.
    assert deliver_digest(settings, tmp_path / "out2")[1] == 0


def test_binary_page_is_rejected_and_not_stored(settings: Settings) -> None:
    result = ingest(settings, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    assert result.status == "rejected" and "binary" in result.reason


def test_changed_page_embeds_only_new_passages(settings: Settings) -> None:
    first = ingest(settings, positive_page())
    monitor = Monitor(settings)
    before = {c.text: c.id for c in monitor.store.chunks_for(first.doc_id or 0)}
    changed = positive_page().replace("不少于500TB".encode("gb18030"), "不少于800TB".encode("gb18030"))
    result = monitor.ingest(RawPage(url="http://127.0.0.1/cggg/zygg/gkzb/202611/t20261101_1.htm", body=changed))
    after = {c.text: c.id for c in monitor.store.chunks_for(first.doc_id or 0)}
    assert monitor.embedded == len(set(after) - set(before)) >= 1  # only the changed row is embedded
    assert all(after[text] == before[text] for text in set(after) & set(before))  # kept rows keep their ids
    assert len(monitor.vectors) == len(after) and "police-us-tech-procurement" in result.flagged
    # The same passages on another page are not embedded again either.
    monitor.ingest(RawPage(url="http://127.0.0.1/copy.htm", body=changed))
    assert monitor.embedded == len(set(after) - set(before))
    monitor.close()
