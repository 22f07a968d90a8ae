"""A hostile-input sweep of the JSON API and the command line: empty, huge, malformed and
wrong-type arguments and bodies give a clear 4xx or a clear error, never a 500 or a traceback.

The API is driven by schemathesis from the app's own OpenAPI document (property-based: every
operation, parameters and bodies generated from their declared types and beyond them), as an
analyst (so triage is reached too); the command line by a table of bad arguments per command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from typer.testing import CliRunner

from ground.config import Settings
from index.store import Alert
from loophole.cli import app
from loophole.pipeline import Monitor, RawPage
from tests.conftest import DEMO_WEB
from web.app import create_app
from web.auth import add_user

PAGES = ["vendor/en/solutions/hiknimbus-vsaas-on-azure.html", "cggg/zygg/gkzb/202610/t20261009_3102803.htm"]
TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def web_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """A data directory with two demo pages (one alert at least) and an analyst's token."""
    home = tmp_path_factory.mktemp("hostile-api") / "home"
    config = Settings(home=home)
    monitor = Monitor(config)
    try:
        for page in PAGES:
            monitor.ingest(RawPage(url=f"http://demo.invalid/{page}", body=(DEMO_WEB / page).read_bytes(), source="demo"))
        with monitor.store.session() as session:
            assert session.query(Alert).count() >= 1
        TOKENS["analyst"] = add_user(monitor.store, "fuzzer", "analyst")
    finally:
        monitor.close()
    application = create_app(config)
    with TestClient(application):   # runs the app's start-up once
        yield application


@pytest.fixture(scope="module")
def api_schema(web_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/api/openapi.json", web_app)


def test_no_api_input_makes_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation of the OpenAPI document, with generated parameters and bodies (schemathesis's
    strategies under hypothesis; its pytest plugin does not run on pytest 9, so operations are looped)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/search", "/api/documents/{doc_id}", "/api/alerts", "/api/feedback"}
    for operation in operations:

        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": f"Bearer {TOKENS['analyst']}"})
            case.validate_response(response, checks=[not_a_server_error])

        check()


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b'{"doc_id": "1", "verdict": "maybe"}',
                                  b'{"doc_id": 99999999999999999999999, "verdict": "dismiss"}',
                                  b'{"doc_id": 1, "verdict": "dismiss", "note": "' + b"x" * 5000 + b'"}',
                                  b'{"doc_id": 1, "verdict": "confirm", "pattern_id": "no-such-pattern"}',
                                  "\ufeff{}".encode(), b"\xff\xfe\x00"])
def test_malformed_feedback_bodies_are_4xx(web_app: FastAPI, body: bytes) -> None:
    with TestClient(web_app, base_url="http://127.0.0.1:8740") as client:
        answer = client.post("/api/feedback", content=body, headers={"Authorization": f"Bearer {TOKENS['analyst']}",
                                                                    "Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, (body[:40], answer.status_code, answer.text[:300])


HUGE = "界" * 20_000
CLI_CASES = [
    ["feedback", "abc", "--dismiss"], ["feedback", "-5", "--confirm"], ["feedback", "1"],
    ["feedback", "99999999999999999999999", "--dismiss"], ["feedback", "1", "--dismiss", "--pattern", HUGE],
    ["evidence"], ["evidence", "nope"], ["evidence", "99999"], ["evidence", "--verify", ""],
    ["evidence", "--verify", "/dev/null"], ["evidence", "--verify", "/"],
    ["alerts", "export", "--format", "xml"], ["alerts", "export", "--since", HUGE],
    ["alerts", "export", "--subscription", "nobody"], ["alerts", "history", "0"], ["alerts", "history", "x"],
    ["alerts", "snooze", "1", "--days", "-1"], ["alerts", "snooze", "1", "--days", "nan"],
    ["alerts", "snooze", "1", "--until", "9999-99-99"], ["alerts", "snooze", "1", "--until", "0001-01-01"],
    ["crawl", "no-such-source"], ["crawl", ""], ["crawl", "ccgp", "--limit", "x"], ["crawl", HUGE],
    ["sources", "--json", "--extra"],
    ["digest", "--out", "/proc/forbidden"], ["search", ""], ["search", "x", "--limit", "0"], ["search", "x", "--page", "-1"],
    ["users", "add", ""], ["users", "add", HUGE], ["users", "add", "x", "--role", "root"], ["users", "remove", "nobody"],
    ["eval", "/nonexistent"], ["eval", "/"], ["ingest", "/nonexistent"], ["calibrate", "/nonexistent"],
    ["calibrate", "--text-only", "/nonexistent"], ["calibrate", "--text-only"],
    ["serve", "--port", "70000"], ["serve", "--port", "x"], ["run", "--bogus"], ["db", "nope"], ["\x00"],
]


@pytest.mark.parametrize("args", CLI_CASES, ids=lambda args: " ".join(a[:12].encode("unicode_escape").decode()
                                                                       for a in args))
def test_bad_command_line_input_is_a_clear_error(settings: Settings, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    shown = [a[:40] for a in args]
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}: {type(result.exception).__name__}: {str(result.exception)[:300]}"
    assert result.exit_code in (1, 2), (shown, result.exit_code, result.output[-500:])
    assert "Traceback" not in result.output
    assert result.output.strip(), "an error says what is wrong"


def test_hostile_input_on_an_existing_store(settings: Settings, tmp_path: Path) -> None:
    """The same commands against a data directory that exists (a digest, an export and a bad file)."""
    settings.ensure_dirs()
    bad = tmp_path / "bad.html"
    bad.write_bytes(b"\x00\xff" * 1000)
    for args in (["digest"], ["alerts", "export", "--format", "csv"], ["evidence", "--verify", str(bad)]):
        result = CliRunner().invoke(app, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output
