"""The smaller defects of issue 16, each with the test that failed before its fix:

* a pattern file whose ``requires`` names an entity type the watchlist lacks was
  accepted and could never fire: now refused, naming the file, the pattern and the type;
* ``loophole search ""`` listed ten arbitrary documents: now an error (a filter lists newest first);
* an invalid API token got the message of a missing one, and the OpenAPI document declared no
  bearer scheme.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ground.config import ConfigError, Settings
from loophole.cli import app
from loophole.pipeline import Monitor
from web.app import create_app
from web.auth import add_user

PATTERN = {"id": "satellite-imagery", "title": "Satellite imagery", "description": "Imagery bought abroad.",
           "examples": ["采购境外卫星遥感影像判读服务。"]}


def _pattern_file(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({"version": "1", "patterns": [{**PATTERN, **fields}]}, allow_unicode=True),
                    encoding="utf-8")
    return path


def test_a_pattern_naming_an_unknown_entity_type_is_refused(settings: Settings, tmp_path: Path) -> None:
    field = "requires"
    bad = _pattern_file(tmp_path, **{field: [["us-cloud", "satelite-vendor"]]})
    monitor = Monitor(settings, [bad])
    with pytest.raises(ConfigError) as raised:
        monitor.check_patterns()
    monitor.close()
    message = str(raised.value)
    assert str(bad) in message and "'satellite-imagery'" in message and f"{field} names unknown entity type " \
        "'satelite-vendor'" in message and "us-cloud" in message


def test_known_types_and_language_pseudo_types_are_accepted(settings: Settings, tmp_path: Path) -> None:
    good = _pattern_file(tmp_path, requires=[["us-cloud", "overseas-region"], ["lang:zh", "lang:zh-hant", "prc-tie", "prc"]])
    monitor = Monitor(settings, [good])
    assert "satellite-imagery" in monitor.check_patterns().by_id
    monitor.close()


def test_commands_refuse_the_bad_pattern_file_cleanly(settings: Settings, tmp_path: Path) -> None:
    bad = _pattern_file(tmp_path, requires=[["nope"]])
    (settings.home / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (settings.home / "config.yaml").write_text(yaml.safe_dump({"pattern_files": [str(bad)]}), encoding="utf-8")
    page = tmp_path / "page.html"
    page.write_text("<html><body>hello</body></html>", encoding="utf-8")
    result = CliRunner().invoke(app, ["ingest", str(page)])
    assert result.exit_code == 2 and "unknown entity type 'nope'" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_search_with_an_empty_query_is_refused(settings: Settings) -> None:
    for query in ("", "   "):
        result = CliRunner().invoke(app, ["search", query])
        assert result.exit_code == 2 and "give a query" in result.output, result.output


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    home = tmp_path_factory.mktemp("api") / "home"
    settings = Settings(home=home)
    settings.ensure_dirs()
    app_ = create_app(settings)
    token = add_user(app_.state.web.store, "viewer", "viewer")
    with TestClient(app_, base_url="http://127.0.0.1:8740") as client:
        yield client, token


def test_a_wrong_token_is_told_apart_from_a_missing_one(api: tuple[TestClient, str]) -> None:
    client, token = api
    missing = client.get("/api/alerts")
    assert missing.status_code == 401 and "token is required" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    for wrong in ("lw_" + "x" * 43, "not-even-our-format", "lw_" + "y" * 500, token[:-1]):
        answer = client.get("/api/alerts", headers={"Authorization": f"Bearer {wrong}"})
        assert answer.status_code == 401 and "not valid" in answer.json()["detail"], wrong
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert client.get("/api/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_openapi_declares_the_bearer_scheme(api: tuple[TestClient, str]) -> None:
    client, _ = api
    document = client.get("/api/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    (name, scheme), = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path in ("/api/search", "/api/alerts", "/api/documents/{doc_id}", "/api/feedback"):
        operation = next(iter(document["paths"][path].values()))
        assert operation["security"] == [{name: []}], path


def test_api_search_with_neither_query_nor_filter_is_refused(api: tuple[TestClient, str]) -> None:
    client, token = api
    answer = client.get("/api/search", params={"q": " "}, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "give q" in answer.json()["detail"]
