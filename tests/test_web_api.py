"""The JSON API and the pages through FastAPI's TestClient: auth, roles, CSRF, escaping, feedback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.store import Alert, ApiToken, Feedback, Store
from tests.conftest import DEV_CORPUS, needs
from tests.web_support import HOSTILE_URL, WebHome, build_web_home
from web.app import create_app, safe_href
from web.auth import hash_token

pytestmark = [needs(DEV_CORPUS), pytest.mark.slow]


@pytest.fixture(scope="module")
def web_home(tmp_path_factory: pytest.TempPathFactory) -> WebHome:
    return build_web_home(tmp_path_factory.mktemp("web") / "home")


@pytest.fixture(scope="module")
def client(web_home: WebHome) -> Iterator[TestClient]:
    with TestClient(create_app(web_home.settings), base_url="http://127.0.0.1:8740") as test_client:
        yield test_client


def bearer(web_home: WebHome, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {web_home.tokens[role]}"}


def test_reading_needs_a_token(client: TestClient, web_home: WebHome) -> None:
    assert client.get("/api/search", params={"q": "Azure"}).status_code == 401
    assert client.get("/api/alerts").status_code == 401
    assert client.get("/api/search", params={"q": "Azure"}, headers={"Authorization": "Bearer lw_nope"}).status_code == 401
    page = client.get("/search", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert client.get("/api/alerts", headers=bearer(web_home, "viewer")).status_code == 200


def test_tokens_are_hashed_at_rest(web_home: WebHome) -> None:
    store = Store(web_home.settings.db_url)
    with store.session() as session:
        rows = session.query(ApiToken).all()
    stored = {row.token_hash for row in rows}
    for token in web_home.tokens.values():
        assert token not in stored and hash_token(token) in stored
    assert web_home.tokens["viewer"].encode() not in Path(web_home.settings.db_url.removeprefix("sqlite:///")).read_bytes()


def test_search_api_returns_ranked_documents_with_passages(client: TestClient, web_home: WebHome) -> None:
    answer = client.get("/api/search", params={"q": "GPU cloud servers in Tokyo rented by a university",
                                               "lang": "zh", "per_page": 5}, headers=bearer(web_home, "viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] >= 5 and len(body["results"]) == 5
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(r["lang"] == "zh" and r["passages"] and r["url"] and r["title"] for r in body["results"])
    second = client.get("/api/search", params={"q": "GPU cloud servers in Tokyo rented by a university",
                                               "lang": "zh", "per_page": 5, "page": 2},
                        headers=bearer(web_home, "viewer")).json()
    assert not {r["doc_id"] for r in second["results"]} & {r["doc_id"] for r in body["results"]}


def test_filters_and_bad_filter_values(client: TestClient, web_home: WebHome) -> None:
    headers = bearer(web_home, "viewer")
    kind = client.get("/api/search", params={"q": "Azure", "kind": "cloud-listing"}, headers=headers).json()
    assert kind["results"] and all(r["kind"] == "cloud-listing" for r in kind["results"])
    assert client.get("/api/search", params={"q": "x", "amount_min": "lots"}, headers=headers).status_code == 422
    assert client.get("/api/search", params={"q": "x", "date_from": "yesterday"}, headers=headers).status_code == 422


def test_document_and_alerts_api(client: TestClient, web_home: WebHome) -> None:
    headers = bearer(web_home, "viewer")
    doc = client.get(f"/api/documents/{web_home.hostile_doc}", headers=headers).json()
    assert doc["url"] == HOSTILE_URL and "<script>" in doc["title"]
    assert client.get("/api/documents/999999", headers=headers).status_code == 404
    alerts = client.get("/api/alerts", headers=headers).json()
    assert any(a["id"] == web_home.hostile_alert for a in alerts)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert client.get("/api/alerts", params={"since": future}, headers=headers).json() == []
    assert client.get("/api/alerts", params={"since": "last week"}, headers=headers).status_code == 422
    assert "/api/feedback" in client.get("/api/openapi.json").json()["paths"]


def test_feedback_needs_analyst(client: TestClient, web_home: WebHome) -> None:
    body = {"doc_id": web_home.hostile_doc, "verdict": "dismiss", "note": "test page"}
    assert client.post("/api/feedback", json=body).status_code == 401
    assert client.post("/api/feedback", json=body, headers=bearer(web_home, "viewer")).status_code == 403
    assert client.post("/api/feedback", json={**body, "verdict": "maybe"},
                       headers=bearer(web_home, "analyst")).status_code == 422
    answer = client.post("/api/feedback", json=body, headers=bearer(web_home, "analyst"))
    assert answer.status_code == 200, answer.text
    store = Store(web_home.settings.db_url)
    with store.session() as session:
        assert session.get(Alert, web_home.hostile_alert).status == "dismissed"  # type: ignore[union-attr]
        assert session.query(Feedback).filter_by(doc_id=web_home.hostile_doc).count() >= 1


def login(client: TestClient, token: str) -> None:
    answer = client.post("/login", data={"token": token}, headers={"Sec-Fetch-Site": "same-origin"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def test_form_triage_needs_csrf_token_and_same_origin(client: TestClient, web_home: WebHome) -> None:
    login(client, web_home.tokens["analyst"])
    try:
        page = client.get("/alerts?status=all")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
        url = f"/alerts/{web_home.hostile_alert}/triage"
        form = {"verdict": "confirm", "note": "seen", "csrf": csrf}
        assert client.post(url, data={**form, "csrf": "forged"}, follow_redirects=False).status_code == 403
        assert client.post(url, data=form, headers={"Sec-Fetch-Site": "cross-site"},
                           follow_redirects=False).status_code == 403
        assert client.post(url, data=form, headers={"Origin": "https://evil.example"},
                           follow_redirects=False).status_code == 403
        done = client.post(url, data=form, headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
        assert done.status_code == 303
    finally:
        client.cookies.clear()


def test_viewer_cannot_triage_from_the_browser(client: TestClient, web_home: WebHome) -> None:
    login(client, web_home.tokens["viewer"])
    try:
        page = client.get("/alerts?status=all")
        assert "Triage needs the analyst role" in page.text and 'name="csrf"' not in page.text
        answer = client.post(f"/alerts/{web_home.hostile_alert}/triage", data={"verdict": "confirm", "csrf": "x"},
                             headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
        assert answer.status_code == 403
    finally:
        client.cookies.clear()


@pytest.mark.parametrize("path", ["/search?q=海康威视+Azure", "/documents/{doc}", "/alerts?status=all",
                                  "/search?q=&source=hostile", "/documents/{doc}/saved"])
def test_hostile_page_renders_as_text(client: TestClient, web_home: WebHome, path: str) -> None:
    answer = client.get(path.format(doc=web_home.hostile_doc), headers=bearer(web_home, "viewer"))
    assert answer.status_code == 200, answer.text
    assert "script-src" not in answer.headers["content-security-policy"]  # default-src 'none': no scripts at all
    text = answer.text
    if path.endswith("/saved"):
        assert answer.headers["content-type"].startswith("text/plain")
        assert "sandbox" in answer.headers["content-security-policy"]
        return
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", text, re.IGNORECASE)   # no tag carries an event handler
    assert not re.search(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", text, re.IGNORECASE)
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in text     # shown, as text


def test_safe_href_allows_only_http() -> None:
    assert safe_href("https://a.example/x") == "https://a.example/x"
    for bad in ("javascript:alert(1)", " JAVASCRIPT:alert(1)", "data:text/html,x", "file:///etc/passwd", "//x", ""):
        assert safe_href(bad) == ""


def test_auth_off_only_on_loopback(web_home: WebHome) -> None:
    public = web_home.settings.model_copy(update={"web": web_home.settings.web.model_copy(update={"host": "0.0.0.0"})})
    with pytest.raises(ValueError, match="loopback"):
        create_app(public, auth=False)
    with TestClient(create_app(web_home.settings, auth=False)) as local:
        assert local.get("/api/alerts").status_code == 200
        assert local.post("/api/feedback", json={"doc_id": web_home.hostile_doc, "verdict": "confirm"}).status_code == 401
