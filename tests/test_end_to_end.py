"""The whole chain on the demo web: crawl (HTTP and Chromium), extract, index, flag, email.

A real SMTP server (aiosmtpd) listens on loopback; `loophole demo` runs as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from tests.conftest import DEMO_WEB, ROOT, cli_env
from tests.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's Chromium is missing")]


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__(message_class=EmailMessage)
        self.messages: list[bytes] = []

    def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
        self.messages.append(bytes(message))


DEMO_PORT = str(free_port())


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()  # aiosmtpd's readiness check needs a real port number
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[Inbox, int]) -> tuple[Path, EmailMessage]:
    inbox, port = smtp
    home = tmp_path_factory.mktemp("demo-home")
    config = home / "config.yaml"
    config.write_text(yaml.safe_dump({"smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                                               "recipients": ["researcher@example.org"]}}))
    completed = subprocess.run([sys.executable, "-m", "loophole.cli", "demo", "--port", DEMO_PORT], cwd=ROOT, capture_output=True,
                               text=True, timeout=400, env=cli_env(home, LOOPHOLE_CONFIG=str(config)))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(inbox.messages) == 1, "exactly one digest email"
    message = message_from_bytes(inbox.messages[0], policy=policy.default)
    assert isinstance(message, EmailMessage)
    return home, message


def _expected() -> list[dict]:
    return json.loads((DEMO_WEB / "expected.json").read_text(encoding="utf-8"))["pages"]


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return part.get_content()


def test_digest_lists_the_positives_and_none_of_the_negatives(demo_run: tuple[Path, EmailMessage]) -> None:
    _, message = demo_run
    text = _body(message, "plain")
    html = _body(message, "html")
    for page in _expected():
        listed = page["path"] in text
        assert listed == bool(page["patterns"]), f"{page['path']} ({page['title']}): listed={listed}"
        if page["patterns"]:
            assert page["path"].split("?")[0] in html
    assert message["To"] == "researcher@example.org"


def test_javascript_portal_was_rendered_by_chromium(demo_run: tuple[Path, EmailMessage]) -> None:
    home, _ = demo_run
    docs = json.loads(subprocess.run([sys.executable, "-m", "loophole.cli", "docs", "--source", "yuanjiang-portal",
                                      "--json"], cwd=ROOT, capture_output=True, text=True, check=True,
                                     env=cli_env(home)).stdout)
    titles = {doc["title"] for doc in docs}
    expected = {p["title"] for p in _expected() if p["path"].startswith("/province/")}
    assert titles == expected
    assert all(doc["chars"] > 200 for doc in docs)


def test_rerun_fetches_but_stores_nothing_new(demo_run: tuple[Path, EmailMessage], smtp: tuple[Inbox, int]) -> None:
    home, _ = demo_run
    inbox, _ = smtp
    completed = subprocess.run([sys.executable, "-m", "loophole.cli", "demo", "--port", DEMO_PORT], cwd=ROOT, capture_output=True,
                               text=True, timeout=400, env=cli_env(home, LOOPHOLE_CONFIG=str(home / "config.yaml")))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "digest default/email: 0 alerts -> " in completed.stdout
    second = message_from_bytes(inbox.messages[-1], policy=policy.default)
    assert isinstance(second, EmailMessage)
    assert "0 new alerts" in str(second["Subject"])
    # The rerun found nothing new on any demo site: healthy crawls, so no "need attention" line;
    # and the sources the demo does not run are not listed at all.
    assert "need attention" not in _body(second, "plain") and "ccgp-search" not in _body(second, "plain")
