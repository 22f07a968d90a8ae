"""Secrets come only from the environment and never reach a log, an error or a dump.

A real SMTP server with AUTH (aiosmtpd on loopback) checks that the password really is read
from ``LOOPHOLE_SMTP_PASSWORD``; every log record (DEBUG, all loggers), error message and
settings dump is searched for it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.delivery import DeliveryError
from ground.config import ConfigError, Settings, load_settings
from loophole.notify import deliver_digest
from tests.conftest import ROOT, cli_env
from tests.ports import free_port
from tests.test_crash_digest import add_alerts
from tests.test_end_to_end import Inbox

SECRET = "s3cr3t-Pa55-do-not-log"
# Plain AUTH on loopback is the point of these tests; aiosmtpd rightly warns about it anywhere else.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


class Auth:
    def __init__(self, accept: str) -> None:
        self.accept = accept
        self.seen: list[str] = []

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        self.seen.append(auth_data.password.decode())
        return AuthResult(success=auth_data.password.decode() == self.accept)


@pytest.fixture(params=[SECRET, "another-password"], ids=["accepts", "rejects"])
def smtp_auth(request: pytest.FixtureRequest) -> Iterator[tuple[Inbox, Auth, int]]:
    inbox, auth = Inbox(), Auth(request.param)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=auth,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        yield inbox, auth, controller.port
    finally:
        controller.stop()


def _settings(home: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Path]:
    home.mkdir(parents=True)
    config = home / "config.yaml"
    config.write_text(yaml.safe_dump({"smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                                               "username": "watch", "recipients": ["a@example.org"], "timeout_seconds": 3}}))
    monkeypatch.setenv("LOOPHOLE_HOME", str(home))
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(config))
    monkeypatch.setenv("LOOPHOLE_SMTP_PASSWORD", SECRET)
    return load_settings(), config


def test_password_from_environment_is_used_and_never_logged(
        smtp_auth: tuple[Inbox, Auth, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    inbox, auth, port = smtp_auth
    settings, _ = _settings(tmp_path / "home", port, monkeypatch)
    settings.ensure_dirs()
    from index.store import Store
    store = Store(settings.db_url)
    add_alerts(store, 0, 2)
    store.close()
    error = ""
    with caplog.at_level(logging.DEBUG):
        try:
            deliver_digest(settings)
        except DeliveryError as exc:
            error = str(exc)
    assert auth.seen and set(auth.seen) == {SECRET}       # read from the environment, sent on every attempt
    assert bool(inbox.messages) == (auth.accept == SECRET) and bool(error) != bool(inbox.messages)
    for text in (error, caplog.text, repr(settings), settings.model_dump_json(), str(settings.smtp)):
        assert SECRET not in text


def test_cli_failure_output_holds_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    _, config = _settings(home, free_port(), monkeypatch)   # nothing listens: delivery fails
    done = subprocess.run([sys.executable, "-m", "loophole.cli", "-v", "digest", "--send"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=cli_env(home, LOOPHOLE_CONFIG=str(config), LOOPHOLE_SMTP_PASSWORD=SECRET))
    assert done.returncode == 1 and "alerts stay unsent" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_password_in_the_file_is_refused_without_echoing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              home: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"smtp:\n  host: mail\n  password: {SECRET}\n")
    monkeypatch.setenv("LOOPHOLE_CONFIG", str(config))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"{config}:3: field smtp.password" in str(caught.value) and SECRET not in str(caught.value)


def test_environment_is_read_only_in_the_config_module() -> None:
    """One place to audit: no other module reads environment variables."""
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = [str(path.relative_to(ROOT)) for package in ("ground", "loophole", "extract", "index", "alerts", "crawlers")
                 for path in (ROOT / package).rglob("*.py")
                 if path.name != "config.py" and reads.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
