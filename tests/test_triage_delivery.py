"""Triage reaches delivery: a dismissed or snoozed alert group is sent by no channel (email, a
JSON webhook, the Atom feed); a confirmed one is delivered as usual and stays confirmed.

Before the fix every channel read only "sent or not", so a dismissal changed nothing that a
subscriber saw. Real SMTP (aiosmtpd) and a real webhook receiver on loopback; verdicts and
snoozes are given through the command line, as an analyst would.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.jobs import run_digest
from ground.config import Settings, load_settings
from index.store import Alert, Document, Store
from loophole.cli import app
from tests.alerts_helpers import Inbox, add_alert, body, smtp_server, webhook_receiver

ATOM = "{http://www.w3.org/2005/Atom}"
TITLES = {"dismissed": "甲市公安局GPU云算力租用项目", "confirmed": "乙市公安局视频分析服务器采购项目",
          "snoozed": "丙市公安局境外云平台服务项目", "untouched": "丁市公安局算力服务采购项目"}


@pytest.fixture
def channels(home: Path) -> Iterator[tuple[Settings, Inbox, list[dict[str, Any]]]]:
    """One subscription on three channels: email, a JSON webhook and an Atom feed."""
    with smtp_server() as (inbox, smtp_port), webhook_receiver() as (hooks, hook_port):
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(yaml.safe_dump({
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "retries": 0, "timeout_seconds": 5},
            "subscriptions": [{"name": "team", "recipients": ["analyst@example.org"],
                               "apprise": [f"json://127.0.0.1:{hook_port}/hook"], "atom": True}]},
            allow_unicode=True), encoding="utf-8")
        yield load_settings(), inbox, hooks


def _alerts(settings: Settings) -> dict[str, int]:
    """Four unrelated notices (own project numbers, so none is grouped with another): name -> doc id."""
    store = Store(settings.db_url)
    docs = {}
    for n, (name, title) in enumerate(TITLES.items()):
        alert_id = add_alert(store, f"http://www.ccgp.gov.cn/cggg/dfgg/gkzb/202611/t2026110{n}_{n}.htm", title=title,
                             text=f"{title}。" * 20, fields={"project_no": f"GA-{n}", "buyer": title[:5]})
        with store.session() as session:
            docs[name] = session.get(Alert, alert_id).doc_id  # type: ignore[union-attr]
    store.close()
    return docs


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def _alert_of(settings: Settings, doc_id: int) -> int:
    store = Store(settings.db_url)
    with store.session() as session:
        alert_id = session.scalars(select(Alert.id).where(Alert.doc_id == doc_id)).one()
    store.close()
    return alert_id


def _delivered(settings: Settings, inbox: Inbox, hooks: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The notices each channel carried in the latest run (email, webhook) or holds now (Atom);
    the receivers are emptied, so a channel that heard nothing in a run shows an empty set."""
    text = body(inbox.messages.pop(), "plain") if inbox.messages else ""
    records = [r for hook in hooks for r in json.loads(hook["message"])["alerts"]]
    hooks.clear()
    feed = ET.parse(settings.feeds_dir / "team.atom").getroot()
    atom = " ".join(entry.findtext(f"{ATOM}title") or "" for entry in feed.iter(f"{ATOM}entry"))
    return {"email": {name for name, title in TITLES.items() if title in text},
            "webhook": {name for name, title in TITLES.items() if any(r["title"] == title for r in records)},
            "atom": {name for name, title in TITLES.items() if title in atom}}


def test_dismissed_and_snoozed_alerts_reach_no_channel_confirmed_ones_do(
        channels: tuple[Settings, Inbox, list[dict[str, Any]]]) -> None:
    settings, inbox, hooks = channels
    docs = _alerts(settings)
    _cli("feedback", str(docs["dismissed"]), "--dismiss", "--note", "domestic cloud, not evidence")
    _cli("feedback", str(docs["confirmed"]), "--confirm")
    _cli("alerts", "snooze", str(_alert_of(settings, docs["snoozed"])), "--days", "3")
    run = run_digest(settings, "team")
    assert not run.failed, run.results
    expected = {"confirmed", "untouched"}
    assert _delivered(settings, inbox, hooks) == {"email": expected, "webhook": expected, "atom": expected}
    store = Store(settings.db_url)
    with store.session() as session:   # a send does not overwrite a verdict
        assert session.get(Alert, _alert_of(settings, docs["confirmed"])).status == "confirmed"  # type: ignore[union-attr]
    store.close()
    # Four days on, the snooze is over: the snoozed group arrives; the dismissed one still does not.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=4), tick=False):
        run_digest(settings, "team")
    after = _delivered(settings, inbox, hooks)
    assert after["email"] == after["webhook"] == {"snoozed"}
    assert after["atom"] == {"confirmed", "untouched", "snoozed"}


def test_a_dismissed_group_is_not_resent_when_a_later_stage_joins_it(
        channels: tuple[Settings, Inbox, list[dict[str, Any]]]) -> None:
    settings, inbox, hooks = channels
    docs = _alerts(settings)
    run_digest(settings, "team")
    assert _delivered(settings, inbox, hooks)["email"] == set(TITLES)
    _cli("feedback", str(docs["dismissed"]), "--dismiss")
    store = Store(settings.db_url)
    with store.session() as session:
        tender = session.get(Document, docs["dismissed"])
        assert tender is not None
        award_fields = {**tender.fields, "notice_type": "award"}
    add_alert(store, "http://www.ccgp.gov.cn/cggg/dfgg/zbgg/202611/t20261120_9.htm", title=TITLES["dismissed"] + "中标公告",
              fields=award_fields, text="中标公告。" * 30)
    store.close()
    run = run_digest(settings, "team")   # the award would bump the group's revision and re-send it
    assert [r.count for r in run.results if r.channel == "email"] == [0]
    assert _delivered(settings, inbox, hooks)["atom"] == set(TITLES) - {"dismissed"}
    # Confirming it later (the latest verdict wins) delivers the update.
    _cli("feedback", str(docs["dismissed"]), "--confirm")
    run_digest(settings, "team")
    assert _delivered(settings, inbox, hooks)["email"] == {"dismissed"}


def test_snooze_refuses_bad_input(channels: tuple[Settings, Inbox, list[dict[str, Any]]]) -> None:
    settings, _, _ = channels
    alert = _alert_of(settings, _alerts(settings)["snoozed"])
    for args, message in ((["alerts", "snooze", "999999", "--days", "1"], "no alert with id 999999"),
                          (["alerts", "snooze", str(alert), "--until", "2001-01-01"], "not in the future"),
                          (["alerts", "snooze", str(alert), "--until", "soon"], "use a date"),
                          (["alerts", "snooze", str(alert)], "exactly one of")):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    _cli("alerts", "snooze", str(alert), "--clear")


def test_digest_send_reports_every_channel(channels: tuple[Settings, Inbox, list[dict[str, Any]]]) -> None:
    """Before: "digest with 0 alerts -> nowhere" after a webhook got them all (only email was counted)."""
    settings, _, hooks = channels
    _alerts(settings)
    result = CliRunner().invoke(app, ["digest", "--send"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"digest team/email: 4 alerts -> smtp:127\.0\.0\.1:\d+", lines[0]), lines
    assert lines[1].startswith("digest team/apprise: 4 alerts -> apprise:json:") and len(hooks) == 1
    assert lines[2].startswith("digest team/atom: 4 alerts -> file:") and "nowhere" not in result.output
