"""Per-subscription digests end to end: a frozen clock, a real SMTP server on loopback,
near-duplicates, failing delivery, filters, webhooks, the Atom feed and the export."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.dedup import assign_groups
from alerts.jobs import run_digest
from ground.config import Settings, load_settings
from index.store import Alert, AlertSend, Feedback, Store
from loophole.cli import app
from tests.alerts_helpers import Inbox, add_alert, add_crawl_run, body, smtp_server, webhook_receiver
from tests.conftest import ROOT, cli_env

CCGP = "http://www.ccgp.gov.cn/cggg/dfgg/gkzb/202611/t20261101_100.htm"
PROVINCE = "http://www.yuanjiang.gov.cn/province/notice/2026-018.html"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as server:
        yield server


def configure(home: Path, smtp_port: int, **subscription: object) -> Settings:
    """Write config.yaml with one subscription and the loopback SMTP server; load it as a user would."""
    home.mkdir(parents=True, exist_ok=True)
    sub = {"name": "researchers", "recipients": ["analyst@example.org"], **subscription}
    (home / "config.yaml").write_text(yaml.safe_dump({
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "retries": 1,
                 "retry_wait_seconds": 0.01, "timeout_seconds": 5},
        "subscriptions": [sub]}, allow_unicode=True), encoding="utf-8")
    return load_settings()


def test_digest_end_to_end_with_frozen_clock(home: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = configure(home, port, timezone="Asia/Shanghai", time="08:00")
    store = Store(settings.db_url)
    add_alert(store, CCGP)
    add_alert(store, "http://vendor.example/cloud", source="demo-vendor", title="GPU cloud for city brains",
              text="We rent A100 clusters to public security bureaus. " * 3, fields={},
              pattern="gpu-cloud-rental", score=0.55, sentence="We rent A100 clusters to public security bureaus.")
    add_alert(store, CCGP.replace("100", "300"), title="第二个公安局云算力采购公告", score=0.6, text="第二个公告。" * 30,
              fields={"project_no": "OTHER-1", "buyer": "沅州市公安局"})
    add_crawl_run(store, "ccgp")
    add_crawl_run(store, "jsggzy", health="degraded", reason="block page: 频繁访问")
    add_crawl_run(store, "ccgp-local", stats={"downloader/response_status_count/403": 4, "ingest/stored": 0})
    add_crawl_run(store, "demo-vendor", stats={"downloader/response_status_count/403": 4})  # not scheduled
    store.close()
    with time_machine.travel(datetime(2026, 11, 20, 0, 0, 5, tzinfo=UTC), tick=False):
        run = run_digest(settings, "researchers")
    assert not run.failed and [r.count for r in run.results] == [3]
    message = inbox.messages[0]
    assert message["To"] == "analyst@example.org"
    assert "3 new alerts (2026-11-20)" in str(message["Subject"])   # the subscriber's local date
    html, text = body(message, "html"), body(message, "plain")
    assert "2026-11-20 08:00 Asia/Shanghai" in text
    for expected in ("沅州市公安局", "CNY 8,600,000", "2026-11-01", "police-us-tech-procurement", "NVIDIA",
                     "GPU cloud for city brains", "Crawl health", "频繁访问", "HTTP 403 x4"):
        assert expected in html and expected in text, expected
    assert f'href="{CCGP}"' in html
    # The score is shown as the calibrated probability it is, not as a raw 0.80.
    assert "confidence 80%" in text and "confidence <b>80%</b>" in html
    assert "3 new alerts in 2 patterns from 2 sources" in text
    # Only the unhealthy sources of those configured to run, each with its reason and since when.
    assert "crawl: 2 sources need attention" in text
    assert re.search(r"jsggzy: blocked since 20\d\d-\d\d-\d\d \d\d:\d\d UTC - block page: 频繁访问", text)
    assert "ccgp-local: failing since" in text and "lists answered only errors (HTTP 403 x4)" in text
    assert "ccgp:" not in text and "demo-vendor" not in text and "never" not in text
    # The decisive sentence is highlighted in its context.
    assert "预算金额：860.00万元。<span style=\"background:#ffe88a" in html
    # Patterns in library order; within a pattern, best score first.
    assert text.index("[gpu-cloud-rental]") < text.index("[police-us-tech-procurement]")
    assert text.index("沅州市公安局视频") < text.index("第二个公安局云算力采购公告")


def test_restart_between_runs_sends_nothing_twice(home: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = configure(home, port)
    store = Store(settings.db_url)
    add_alert(store, CCGP)
    store.close()
    env = cli_env(home)
    for _ in range(2):   # two processes: nothing in memory survives between them
        completed = subprocess.run([sys.executable, "-m", "loophole.cli", "digest", "--send"], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-2000:]
    subjects = [str(m["Subject"]) for m in inbox.messages]
    assert len(subjects) == 2 and "1 new alert " in subjects[0] and "0 new alerts" in subjects[1]


def test_failing_smtp_leaves_alerts_unsent_until_the_next_run(home: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = configure(home, port)
    store = Store(settings.db_url)
    add_alert(store, CCGP)
    inbox.failing = True
    run = run_digest(settings, "researchers")
    assert run.failed and "451" in run.failed[0].error
    assert inbox.attempts == 2                       # the first try and one retry
    with store.session() as session:
        assert session.scalars(select(AlertSend)).all() == []
        assert session.scalars(select(Alert)).one().status == "new"
    inbox.failing = False
    run = run_digest(settings, "researchers")
    assert not run.failed and run.results[0].count == 1
    assert "1 new alert " in str(inbox.messages[-1]["Subject"])
    store.close()


def test_same_notice_on_two_portals_is_one_alert_and_a_later_stage_updates_it(home: Path,
                                                                              smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    settings = configure(home, port)
    store = Store(settings.db_url)
    add_alert(store, CCGP, source="ccgp")
    add_alert(store, PROVINCE, source="yuanjiang-portal", score=0.7)
    run_digest(settings, "researchers")
    first = body(inbox.messages[-1], "plain")
    assert "1 new alert in 1 pattern from 2 sources" in first
    assert "seen 2 times" in first and CCGP in first and PROVINCE in first
    # Republished on a third portal at the same stage: not news, nothing is sent again.
    add_alert(store, "http://mirror.example/notice/018.html", source="mirror", score=0.6)
    run_digest(settings, "researchers")
    assert "0 new alerts" in str(inbox.messages[-1]["Subject"])
    # The award notice of the same procurement: the one alert is updated and sent again.
    award = {"project_no": "YZGA-2026-018", "buyer": "沅州市公安局", "notice_type": "award",
             "suppliers": ["北京某科技有限公司"]}
    add_alert(store, CCGP.replace("100", "200"), title="沅州市公安局视频智能分析平台采购项目中标公告", fields=award,
              text="中标供应商：北京某科技有限公司。" + "中标金额：790万元。" * 10, score=0.9)
    run_digest(settings, "researchers")
    third = body(inbox.messages[-1], "plain")
    assert "0 new alerts 1 updated" in third and "[UPDATED]" in third and "award" in third
    with store.session() as session:
        heads = session.scalars(select(Alert).where(Alert.group_id == Alert.id)).all()
        assert len(heads) == 1 and heads[0].revision == 2 and heads[0].score == pytest.approx(0.9)
    store.close()


def test_republished_copy_without_project_number_is_grouped_by_text(settings: Settings) -> None:
    settings.ensure_dirs()
    store = Store(settings.db_url)
    text = "某云服务商面向境内客户出租NVIDIA H100算力，按小时计费，支持大模型训练与推理。" * 4
    add_alert(store, "http://a.example/1", fields={}, text=text, title="H100 算力租赁")
    add_alert(store, "http://b.example/9", fields={}, text="转载：" + text + "来源：某论坛", title="【转载】H100 算力租赁")
    add_alert(store, "http://c.example/2", fields={}, text="完全不同的公告内容，关于办公家具采购。" * 6, title="办公家具")
    assert assign_groups(store) == 1
    with store.session() as session:
        assert len(session.scalars(select(Alert).where(Alert.group_id == Alert.id)).all()) == 2
    store.close()


def test_subscription_filters_and_separate_send_records(home: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(yaml.safe_dump({
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
        "subscriptions": [
            {"name": "police", "recipients": ["a@example.org"], "patterns": ["police-us-tech-procurement"],
             "min_score": 0.5, "entities": ["nvidia"]},
            {"name": "vendor-watch", "recipients": ["b@example.org"], "sources": ["demo-vendor"]}]}))
    settings = load_settings()
    store = Store(settings.db_url)
    add_alert(store, CCGP, score=0.8)
    add_alert(store, "http://x.example/low", title="low score", score=0.3, fields={}, text="低分" * 50)
    add_alert(store, "http://x.example/amd", title="no nvidia", fields={}, entities=[], text="无实体" * 50)
    add_alert(store, "http://vendor.example/p", source="demo-vendor", title="vendor page", pattern="gpu-cloud-rental",
              fields={}, text="vendor text " * 30)
    store.close()
    police = run_digest(settings, "police")
    vendor = run_digest(settings, "vendor-watch")
    assert police.results[0].count == 1 and vendor.results[0].count == 1
    by_to = {str(m["To"]): body(m, "plain") for m in inbox.messages}
    assert "沅州市公安局" in by_to["a@example.org"] and "vendor page" not in by_to["a@example.org"]
    assert "vendor page" in by_to["b@example.org"] and "low score" not in by_to["b@example.org"]


def test_webhook_gets_json_via_apprise_once(home: Path, smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    with webhook_receiver() as (received, hook_port):
        settings = configure(home, port, recipients=[], apprise=[f"json://127.0.0.1:{hook_port}/hook"])
        store = Store(settings.db_url)
        add_alert(store, CCGP)
        store.close()
        run = run_digest(settings, "researchers")
        assert [r.channel.split(":")[1] for r in run.results] == ["json"] and not run.failed
        assert len(received) == 1
        payload = json.loads(received[0]["message"])
        assert payload["count"] == 1
        alert = payload["alerts"][0]
        assert alert["buyer"] == "沅州市公安局" and alert["url"] == CCGP and alert["pattern"] == "police-us-tech-procurement"
        assert "1 new alert" in received[0]["title"]
        run_digest(settings, "researchers")
        assert len(received) == 1        # nothing new: the webhook hears nothing


def test_unreachable_webhook_keeps_alerts_pending(home: Path, smtp: tuple[Inbox, int]) -> None:
    from tests.ports import free_port

    _, port = smtp
    settings = configure(home, port, recipients=[], apprise=[f"json://127.0.0.1:{free_port()}/hook"])
    store = Store(settings.db_url)
    add_alert(store, CCGP)
    run = run_digest(settings, "researchers")
    assert run.failed
    with store.session() as session:
        assert session.scalars(select(AlertSend)).all() == []
    store.close()


def test_atom_feed_is_valid_and_escaped(home: Path, smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    settings = configure(home, port, recipients=[], atom=True)
    store = Store(settings.db_url)
    add_alert(store, CCGP, title="<script>alert(1)</script>公告")
    store.close()
    run = run_digest(settings, "researchers")
    path = Path(run.results[0].target.removeprefix("file:"))
    root = ET.parse(path).getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = root.findall("a:entry", ns)
    assert len(entries) == 1
    assert entries[0].findtext("a:title", namespaces=ns).endswith("<script>alert(1)</script>公告")
    assert "<script>" not in path.read_text(encoding="utf-8")
    assert entries[0].find("a:link", ns).get("href") == CCGP  # type: ignore[union-attr]


def test_export_formats_and_history(home: Path, smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    settings = configure(home, port)
    store = Store(settings.db_url)
    first = add_alert(store, CCGP)
    add_alert(store, PROVINCE, source="yuanjiang-portal")
    with store.session() as session:
        doc_id = session.get(Alert, first).doc_id  # type: ignore[union-attr]
        session.add(Feedback(doc_id=doc_id, pattern_id="police-us-tech-procurement", verdict="confirmed",
                             note="checked"))
    store.close()
    run_digest(settings, "researchers")
    runner = CliRunner()
    rows = [json.loads(line) for line in runner.invoke(app, ["alerts", "export", "--format", "jsonl", "--since",
                                                              "2000-01-01"]).stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["sources"] == ["ccgp", "yuanjiang-portal"]
    events = [e["event"] for e in rows[0]["history"]]
    assert events[0] == "created" and "sent" in events and "feedback" in events
    sent = next(e for e in rows[0]["history"] if e["event"] == "sent")
    assert sent["subscription"] == "researchers" and sent["channel"] == "email"
    data = json.loads(runner.invoke(app, ["alerts", "export", "--format", "json"]).stdout)
    assert data[0]["id"] == rows[0]["id"]
    table = list(csv.DictReader(io.StringIO(runner.invoke(app, ["alerts", "export", "--format", "csv"]).stdout)))
    assert table[0]["buyer"] == "沅州市公安局" and "yuanjiang-portal" in table[0]["sources"]
    assert runner.invoke(app, ["alerts", "export", "--since", "2999-01-01"]).stdout == ""
    bad = runner.invoke(app, ["alerts", "export", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.stderr
    history = json.loads(runner.invoke(app, ["alerts", "history", str(first)]).stdout)
    assert [e["event"] for e in history][0] == "created"
