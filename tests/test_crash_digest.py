"""Digest sending under SIGKILL, and a 10,000-alert digest, against a real SMTP server on loopback.

The kill test starts ``loophole digest --send`` several times and kills it at a random moment
of its run (seeded); new alerts arrive between runs. Then a last run finishes. Every alert must
have reached the inbox (never lost), and an alert seen in two messages is only allowed when both
carry the same Message-ID: the outbox re-sent an interrupted message (at-least-once, see
alerts/outbox.py), it never put one alert into two different digests.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ground.config import Settings, load_settings
from index.store import Alert, Delivery, Document, Store
from loophole.notify import deliver_digest
from tests.conftest import ROOT, cli_env
from tests.ports import free_port
from tests.test_end_to_end import Inbox

SEED = 8
URL = re.compile(r"http://127\.0\.0\.1/alert/(\d+)")


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def _settings(home: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(yaml.safe_dump({
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "recipients": ["watch@example.org"]},
        "digest": {"max_items_per_pattern": 100000}}), encoding="utf-8")
    monkeypatch.setenv("LOOPHOLE_HOME", str(home))
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(config))
    return load_settings()


def add_alerts(store: Store, start: int, count: int, title: str = "沅州市公安局GPU云服务器租用项目{n}") -> None:
    """Documents and alerts straight into the store: the digest does not care how they got there."""
    with store.session() as session:
        docs = [Document(url=f"http://127.0.0.1/alert/{n}", sha256=f"{n:064x}", title=title.format(n=n),
                         text="", kind="procurement-notice") for n in range(start, start + count)]
        session.add_all(docs)
        session.flush()
        session.add_all(Alert(doc_id=doc.id, pattern_id="gpu-cloud-rental", score=0.8,
                              sentence=f"租用境外云平台NVIDIA A100算力服务（第{doc.id}项）") for doc in docs)


def _received(inbox: Inbox) -> dict[str, set[int]]:
    """Message-ID -> alert numbers listed in its plain-text part."""
    seen: dict[str, set[int]] = defaultdict(set)
    for raw in inbox.messages:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        seen[str(message["Message-ID"])].update(int(n) for n in URL.findall(part.get_content()))
    return seen


def _send_and_kill(home: Path, env: dict[str, str], at: float) -> None:
    with subprocess.Popen([sys.executable, "-m", "loophole.cli", "digest", "--send"], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_during_digest_send_never_loses_and_never_splits(
        tmp_path: Path, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = smtp
    home = tmp_path / "home"
    settings = _settings(home, port, monkeypatch)
    store = Store(settings.db_url)
    env = cli_env(home, LOOPHOLE_CONFIG=str(home / "config.yaml"))
    rng, batch, total = random.Random(SEED), 1000, 0
    started = time.monotonic()
    add_alerts(store, 0, batch)
    total += batch
    done = subprocess.run([sys.executable, "-m", "loophole.cli", "digest", "--send"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    full_run = time.monotonic() - started
    for _ in range(3):
        add_alerts(store, total, batch)
        total += batch
        _send_and_kill(home, env, rng.uniform(0.3, 1.2) * full_run)
    final = subprocess.run([sys.executable, "-m", "loophole.cli", "digest", "--send"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr

    received = _received(inbox)
    everything = set().union(*received.values())
    assert everything == set(range(total))                                      # nothing lost
    by_alert: dict[int, set[str]] = defaultdict(set)
    for message_id, numbers in received.items():
        for n in numbers:
            by_alert[n].add(message_id)
    assert all(len(ids) == 1 for ids in by_alert.values())                      # never in two digests
    with store.session() as session:
        assert session.scalars(select(Alert.id).where(Alert.sent_at.is_(None))).first() is None
        assert set(session.scalars(select(Delivery.status))) == {"sent"}
        resent = sum(session.scalars(select(Delivery.attempts)))
    store.close()
    print(f"\n{total} alerts, {len(inbox.messages)} messages, {len(received)} distinct digests, {resent} re-sent")
    assert not list((home / "outbox" / "pending").glob("*.eml"))


def test_failed_send_keeps_the_alerts_for_the_next_run(
        tmp_path: Path, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.delivery import DeliveryError

    inbox, port = smtp
    settings = _settings(tmp_path / "home", free_port(), monkeypatch)      # nothing listens there
    store = Store(settings.db_url)
    add_alerts(store, 0, 3)
    with pytest.raises(DeliveryError):
        deliver_digest(settings)
    working = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": port})})
    # A refused send is not an interrupted one: its claim is released and the next digest carries the alerts.
    assert deliver_digest(working).count("email") == 3
    assert set().union(*_received(inbox).values()) == {0, 1, 2}
    assert len(inbox.messages) == 1
    store.close()


@pytest.mark.slow
def test_ten_thousand_alert_digest_renders_and_sends(
        tmp_path: Path, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch, record_property) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    settings = _settings(tmp_path / "home", port, monkeypatch)
    store = Store(settings.db_url)
    add_alerts(store, 0, 10_000)
    started = time.perf_counter()
    report = deliver_digest(settings)
    seconds = time.perf_counter() - started
    record_property("digest_10k_seconds", round(seconds, 2))
    print(f"\n10,000-alert digest: rendered and sent in {seconds:.2f} s, {len(inbox.messages[0]) / 1e6:.1f} MB")
    assert report.count("email") == 10_000 and report.targets("email")[0].startswith("smtp:")
    assert set().union(*_received(inbox).values()) == set(range(10_000))
    store.close()
