"""Saved searches into digests, "more like this" and the evidence-first switch, on five small pages.

tests/fixtures/search_pages: a police tender naming NVIDIA cards, a park-upkeep notice and an English
news analysis are stored first; a police award naming NVIDIA cards and a library notice come later.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.jobs import run_digest
from alerts.saved import SavedSearchError, list_searches, save_search
from ground.config import Settings
from index.search import SearchEngine, SearchFilters, engine_for
from index.store import Alert, Document, SavedSearchHit, Store
from loophole.pipeline import Monitor, RawPage
from loophole.search_eval import read_folder
from tests.corpus_home import copy_of, settings_for
from web.app import create_app
from web.auth import add_user

PAGES = Path(__file__).parent / "fixtures" / "search_pages"
FIRST = ("police-tender.html", "parks.html", "commentary.html")
LATER = ("police-award.html", "library.html")
QUERY = "police bureau buys servers with Nvidia GPUs"


def ingest(settings: Settings, files: tuple[str, ...]) -> None:
    urls = {file: label.url for file, label in read_folder(PAGES)}
    monitor = Monitor(settings)
    try:
        for file in files:
            monitor.ingest(RawPage(url=urls[file], body=(PAGES / file).read_bytes()))
    finally:
        monitor.close()


@pytest.fixture(scope="module")
def first_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("search") / "home"
    ingest(settings_for(home), FIRST)
    return home


@pytest.fixture
def settings(first_home: Path, tmp_path: Path) -> Settings:
    """A private copy of the first pages' data directory."""
    return settings_for(copy_of(first_home, tmp_path / "home"))


def titles(engine: SearchEngine, query: str, view: str) -> list[str]:
    return [r.title for r in engine.search(query, SearchFilters(), per_page=5, view=view).results]


def test_evidence_first_puts_the_notice_above_the_commentary_about_it(first_home: Path) -> None:
    engine = engine_for(settings_for(first_home))
    evidence = titles(engine, QUERY, "evidence")
    assert evidence[0].startswith("澄川市公安局"), evidence
    assert evidence.index("Why Chinese police still buy Nvidia GPU servers") > 0
    everything = engine.search(QUERY, per_page=5, view="everything")
    assert {r.kind for r in everything.results} >= {"news-commentary", "procurement-notice"}
    with pytest.raises(ValueError, match="view must be one of"):
        engine.search(QUERY, view="best")


def test_an_english_query_reaches_the_chinese_notice_by_its_words(first_home: Path) -> None:
    engine = engine_for(settings_for(first_home))
    top = engine.search(QUERY, per_page=3, view="everything").results
    police = next(r for r in top if r.title.startswith("澄川市公安局"))
    assert police.lexical is not None   # BM25 matched it: 公安局, 服务器, 英伟达 came from the query's words
    marked = [text for passage in police.passages for text, hit in passage.segments(
        engine.search(QUERY, per_page=3, view="everything").terms) if hit]
    assert {"公安局", "英伟达"} & set(marked), marked


def test_a_saved_search_brings_its_new_results_into_the_digest_once(settings: Settings, tmp_path: Path) -> None:
    store = Store(settings.db_url)
    engine = engine_for(settings, store)
    saved = save_search(store, engine, "alice", "police GPUs", QUERY, SearchFilters(), "evidence", "default", top=2)
    ingest(settings, LATER)   # a new police award (relevant) and a library notice (not)

    first = run_digest(settings, "default", out_dir=tmp_path / "out1")
    text = _digest_text(first.results[0].target)
    assert first.results[0].search_results == 1
    assert 'Saved search "police GPUs": 1 new' in text
    assert "溪山县公安局人像比对GPU服务器采购项目中标公告" in text   # the new police award
    assert "图书馆" not in text                                    # not in the search's first two
    assert "澄川市公安局视频智能分析服务器" not in text.split("Saved search")[1]   # the baseline: seen when saved
    with store.session() as session:
        sent = session.query(SavedSearchHit).filter_by(search_id=saved.id, channel="email").all()
    assert [hit.doc_id for hit in sent] == [_doc_id(store, "溪山县公安局")]

    second = run_digest(settings, "default", out_dir=tmp_path / "out2")
    assert second.results[0].search_results == 0
    assert "Saved search" not in _digest_text(second.results[0].target)


def test_saving_refuses_bad_searches(settings: Settings) -> None:
    store = Store(settings.db_url)
    engine = engine_for(settings, store)
    with pytest.raises(SavedSearchError, match="query or a filter"):
        save_search(store, engine, "alice", "empty", "  ", SearchFilters(), "evidence", "default")
    with pytest.raises(SavedSearchError, match="view must be"):
        save_search(store, engine, "alice", "odd", QUERY, SearchFilters(), "best", "default")
    save_search(store, engine, "alice", "twice", QUERY, SearchFilters(), "evidence", "default")
    with pytest.raises(SavedSearchError, match="already has"):
        save_search(store, engine, "alice", "twice", QUERY, SearchFilters(), "evidence", "default")


@pytest.fixture
def web(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = Store(settings.db_url)
    tokens = {role: add_user(store, f"{role}-user", role) for role in ("viewer", "analyst")}
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8740") as client:
        yield client, tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_search_page_switches_views_and_offers_more_like_this(web: tuple[TestClient, dict[str, str]],
                                                               settings: Settings) -> None:
    client, tokens = web
    client.post("/login", data={"token": tokens["viewer"]}, headers={"Sec-Fetch-Site": "same-origin"})
    page = client.get("/search", params={"q": QUERY}).text
    assert '<span class="on"' in page and "Evidence first</span>" in page
    assert re.search(r'href="\?q=[^"]+&amp;view=everything"', page), "the switch to everything keeps the query"
    assert "more like this" in page and "⚑ police-us-tech-procurement" in page
    everything = client.get("/search", params={"q": QUERY, "view": "everything"}).text
    assert "Everything</span>" in everything
    store = Store(settings.db_url)
    police = _doc_id(store, "澄川市公安局")
    like = client.get("/search", params={"like": police}).text
    assert "More like" in like and f'href="/documents/{police}"' in like
    assert "More like this" in client.get(f"/documents/{police}").text
    api = client.get("/api/search", params={"like": police, "view": "everything"},
                     headers=_bearer(tokens["viewer"])).json()
    assert api["like"] == police and api["view"] == "everything"
    assert police not in [r["doc_id"] for r in api["results"]]
    assert client.get("/api/search", params={"like": 999999}, headers=_bearer(tokens["viewer"])).status_code == 404
    with store.session() as session:
        alert = session.query(Alert).filter_by(doc_id=police).first()
    if alert is not None:   # the detector flagged the tender: "more like this" from its alert
        by_alert = client.get("/api/search", params={"like_alert": alert.id}, headers=_bearer(tokens["viewer"]))
        assert by_alert.status_code == 200 and by_alert.json()["like"] == police


def test_analysts_save_searches_from_the_page_and_the_api(web: tuple[TestClient, dict[str, str]],
                                                           settings: Settings) -> None:
    client, tokens = web
    viewer = client.post("/api/searches", json={"name": "v", "q": QUERY}, headers=_bearer(tokens["viewer"]))
    assert viewer.status_code == 403
    made = client.post("/api/searches", json={"name": "police GPUs", "q": QUERY, "filters": {"lang": "zh"}, "top": 5},
                       headers=_bearer(tokens["analyst"]))
    assert made.status_code == 201, made.text
    assert made.json()["filters"] == {"lang": "zh"} and made.json()["subscription"] == "default"
    bad = client.post("/api/searches", json={"name": "x", "q": QUERY, "filters": {"colour": "red"}},
                      headers=_bearer(tokens["analyst"]))
    assert bad.status_code == 422
    client.post("/login", data={"token": tokens["analyst"]}, headers={"Sec-Fetch-Site": "same-origin"})
    page = client.get("/search", params={"q": "英伟达 服务器"}).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    saved = client.post("/searches", data={"csrf": csrf, "name": "英伟达", "q": "英伟达 服务器", "view": "everything"},
                        headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert client.post("/searches", data={"csrf": "stale", "name": "x", "q": "y"},
                       headers={"Sec-Fetch-Site": "same-origin"}).status_code == 403
    listing = client.get("/searches").text
    assert "police GPUs" in listing and "英伟达" in listing
    rows = {row.name: row for row in list_searches(Store(settings.db_url))}
    assert rows["英伟达"].view == "everything" and rows["英伟达"].owner == "analyst-user"
    gone = client.delete(f"/api/searches/{rows['police GPUs'].id}", headers=_bearer(tokens["analyst"]))
    assert gone.status_code == 204
    assert [s["name"] for s in client.get("/api/searches", headers=_bearer(tokens["viewer"])).json()] == ["英伟达"]


def _doc_id(store: Store, title_start: str) -> int:
    with store.session() as session:
        return next(d.id for d in session.query(Document) if d.title.startswith(title_start))


def _digest_text(target: str) -> str:
    message = email.message_from_bytes(Path(target.removeprefix("file:")).read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())
